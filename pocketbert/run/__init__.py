"""``pocketbert run``: the main job — export, quantize, convert, verify, benchmark, report — in one command."""
