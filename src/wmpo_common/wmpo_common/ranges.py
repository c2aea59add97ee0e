"""Id lists on command lines and in parameters (initial-state ids, seeds)."""


def parse_range(text: str) -> list[int]:
    """'100:200' -> 100..199 (last excluded); '3,5,8' -> [3, 5, 8]. ValueError on anything else."""
    try:
        if ":" in text:
            first, last = text.split(":")
            return list(range(int(first), int(last)))
        return [int(v) for v in text.split(",")]
    except ValueError as error:
        raise ValueError(f"{text!r} is not an id range 'first:last' or a list '3,5,8'") from error
