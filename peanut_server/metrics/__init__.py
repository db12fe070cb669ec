"""Quality metrics: completion.py (the eraser's table), masks.py (the masker's table)."""
