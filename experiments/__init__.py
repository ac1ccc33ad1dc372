"""The joint translate -> cluster -> ReID experiment runner (python -m experiments)."""
