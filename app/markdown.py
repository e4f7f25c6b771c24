"""Text from files (checkpoint names, error messages) shown literally inside Streamlit markdown."""

_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def escape_markdown(text: str) -> str:
    """Show ``text`` literally inside markdown (checkpoint names and errors come from files)."""
    return "".join("\\" + c if c in _SPECIAL else c for c in text)
