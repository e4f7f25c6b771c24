"""The Draw page's answer: the recognised digit with its calibrated probability, "3 or 5?" when
the model is unsure, or "Not a digit"; and on one line whether the other architecture's model agrees.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.draw import reading
from app.markdown import escape_markdown
from cvae_core.catalogue import ModelEntry

NUMBER_PAGE = Path(__file__).parents[1] / "views" / "number.py"  # "Read a number": several digits in one picture


def percent(p: float) -> str:
    """A probability for people: never "100 %" (a calibrated model is not certain) nor "0 %"."""
    if p >= 0.995:
        return "> 99 %"
    if p < 0.005:
        return "< 1 %"
    return f"{100 * p:.0f} %"


def is_calibrated(entry: ModelEntry) -> bool:
    """Are the model's probabilities calibrated (a temperature fitted by ``python -m cvae_core.robustness``)?"""
    return entry.info.recognition is not None


def show_answer(entry: ModelEntry, mine: reading.Recognition) -> None:
    """The big answer and, on one line, why it is not a plain digit when it is not. A model without a
    fitted calibration says so beside every percentage: its softmax is overconfident."""
    probs = mine.probs
    calibrated = is_calibrated(entry)
    if mine.flagged:
        value = "Not a digit"
        delta = f"{percent(mine.not_digit)} not a digit" if mine.not_digit is not None else "unlike any digit"
    elif mine.unsure:
        best, second = mine.candidates
        value = f"{best} or {second}?"
        delta = f"{percent(probs[best])} or {percent(probs[second])}"
    else:
        value, delta = str(mine.label), f"{percent(mine.confidence)} sure"
    if not calibrated and not (mine.flagged and mine.not_digit is None):
        delta += ", not calibrated"
    how = ("calibrated probability" if calibrated else
           "probability, not calibrated: no temperature was fitted for this model, so its percentages overstate "
           "how sure it is;")
    st.metric("Recognised digit", value, delta=delta, delta_color="off", delta_arrow="off", border=True,
              help=f"{entry.name}'s {how} p(digit | your input). Below "
                   f"{reading.UNSURE_BELOW:.0%} for every digit the page shows the two best candidates.")
    if mine.flagged:
        st.caption(f":material/block: This does not look like a digit to {escape_markdown(entry.name)}.",
                   help=reading.not_digit_explanation(entry, mine))
        if NUMBER_PAGE.exists():
            st.page_link(NUMBER_PAGE, label="Several digits in one picture? Read a number", icon=":material/pin:")
    elif mine.unsure:
        st.caption(f":material/help: Unsure: no digit reaches {reading.UNSURE_BELOW:.0%}.",
                   help="The probabilities are calibrated: of the answers given with 60 % confidence, about 60 % "
                        "are right. Below that the page names the two best candidates instead of one answer."
                   if calibrated else "These probabilities are not calibrated, so even the two best candidates "
                                      "are less likely than they look.")
    elif not reading.has_digit_check(entry):
        st.caption("No “not a digit” check: this model cannot tell.",
                   help=reading.CANNOT_TELL.format(name=escape_markdown(entry.name)))


def show_partner_line(entry: ModelEntry, mine: reading.Recognition, theirs: reading.Recognition | None,
                      partner: ModelEntry | None) -> None:
    if partner is None or theirs is None:
        st.caption("No model of the other architecture is available to compare with.")
        return
    me, them = escape_markdown(entry.name), escape_markdown(partner.name)
    if theirs.answer == mine.answer:
        calibrated = "" if is_calibrated(partner) else ", not calibrated"
        st.caption(f":material/done_all: {them} agrees ({percent(theirs.confidence)}{calibrated}).")
    else:
        st.markdown(f":orange[:material/call_split: **{me}** reads {mine.answer} · **{them}** reads {theirs.answer}]")


