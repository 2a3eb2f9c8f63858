"""Built-in calibration texts for static int8 and parity-budgeted mixed precision.

Deliberately disjoint from the parity texts (:data:`pocketbert.parity.data.BUILTIN_TEXTS`): choices made on these
texts are then verified on texts they were not made on.
"""

from __future__ import annotations

CALIBRATION_TEXTS: tuple[str, ...] = (
    "The committee approved the budget after a long debate about public transport.",
    "My phone battery dies before lunch every single day.",
    "Researchers found that sleep improves memory consolidation in adults.",
    "Can you recommend a good Italian restaurant near the harbour?",
    "The film was slow at first, but the last hour was brilliant.",
    "Shipping took three weeks and the box arrived damaged.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She moved to Berlin in 2019 to work for a robotics start-up.",
    "Is it going to rain in Seattle tomorrow afternoon?",
    "The central bank raised interest rates by a quarter of a percentage point.",
    "Crème brûlée, jalapeño, façade and Málaga all carry diacritics.",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "Ich habe keine Zeit, aber morgen passt es mir gut.",
    "Great service!!! 10/10 would come back 😊🎉",
    "Error 404: the requested page could not be found on this server.",
    "def add(a, b): return a + b  # a tiny Python function",
    "The mitochondria is the powerhouse of the cell, as every student learns.",
    "Please call me back at +1 (555) 010-2030 before 6 p.m.",
    "The defendant pleaded not guilty to all seven charges on Tuesday.",
    "Honestly, the update made the app slower and harder to use.",
    "Lionel Messi scored twice as Argentina beat France in the final.",
    "Mix two cups of flour with one egg and a pinch of salt.",
    "The telescope captured images of a galaxy 13 billion light-years away.",
    "Our quarterly revenue grew 12% year over year, driven by subscriptions.",
    "ok",
    "Why does the sky look blue during the day but red at sunset?",
    "The hotel room was clean, quiet and had a wonderful view of the sea.",
    "Turn left at the second traffic light, then continue for two kilometres.",
    "A long sentence keeps going with clause after clause, listing apples, pears, plums, cherries, grapes, "
    "melons, lemons, limes, oranges and figs, so that the calibration also sees longer sequences of ordinary words "
    "and the activation ranges of every layer are measured on realistic lengths rather than only on short inputs.",
    "ＡＢＣ full-width letters, ½ fractions, ™ symbols and ← arrows.",
)
