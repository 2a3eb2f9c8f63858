"""The parity checker: runners for every runtime, shared feeds, metrics and gates."""
