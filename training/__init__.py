"""training: teachers -> Emotion-Aware Dynamic Distillation -> small robust student.

Reads a fercurate manifest (``fercurate export --view NAME``). Not implemented yet:
only the command-line entry point exists.
"""
