"""Tooling that measures the product but is not part of it: composed test videos with their
ground truth (issue 12 asks for one home for such tools, apart from the product code)."""
