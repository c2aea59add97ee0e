"""Arm backends. Each implements ``Arm``; the arm node wraps any of them in the safety filter."""
