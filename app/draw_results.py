"""The Draw page's results: everything that needs torch and a model.

The answer comes first, directly under (phone) or beside (desktop) the canvas: the recognised
digit with its calibrated probability, or "3 or 5?" when the model is unsure, or "Not a digit";
then whether the other architecture agrees, the "What did you write?" control and this session's
tally of how many of your digits each model read right. Below: the noise slider, the images
(your upload, what the model sees, both reconstructions), the probability chart, the latent map,
your style as every digit and the archive controls. ``app/views/draw.py`` imports this module
only after the canvas is on screen, so on a cold start the page is usable while torch loads.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import archive_ui, cached_models, figures, inputs, latent_space, reading
from app.markdown import escape_markdown
from cvae_core.archive import ArchiveError
from cvae_core.catalogue import ModelEntry
from cvae_core.preprocess import MAX_BYTES, InputError

if TYPE_CHECKING:
    import plotly.graph_objects as go

log = logging.getLogger(__name__)

MAX_NAME = 60  # characters of an uploaded file's name that are shown
TRUTH_KEY = "draw_truth"  # the "What did you write?" control
TRUTH_INPUT = "draw_truth_input"  # which input the control currently describes
TALLY_KEY = "draw_tally"  # input mark -> Labelled
RECORD_KEY = "draw_record"  # the archive record of the result on screen (for the truth callback)
TRUTH_FLASH = "draw_truth_flash"
TALLY_MAX = 500  # labelled inputs remembered per session
UPLOAD_SIDE = 280  # the uploaded image is shown at most this many pixels wide or high
IMAGE_SIDE = 128  # pixels: each image of the row under the answer; the row wraps (two a row on a phone)
NUMBER_PAGE = Path(__file__).parent / "views" / "number.py"  # "Read a number": several digits in one picture


@dataclass
class Labelled:
    """One of the visitor's inputs with what they say it is, and what each model read in it."""

    truth: int | None = None
    readings: dict[str, str] = field(default_factory=dict)  # model name -> its answer ("7", "not a digit", ...)


def percent(p: float) -> str:
    """A probability for people: never "100 %" (a calibrated model is not certain) nor "0 %"."""
    if p >= 0.995:
        return "> 99 %"
    if p < 0.005:
        return "< 1 %"
    return f"{100 * p:.0f} %"


def upload_input() -> tuple[bytes | None, str | None, str | None]:
    """(file bytes, filename, None) or (None, filename, message)."""
    upload = st.file_uploader(
        "A photo or scan of one digit", type=["png", "jpg", "jpeg"], key="draw_upload",
        max_upload_size=MAX_BYTES // 1_000_000,  # Streamlit's unit: MB of 10^6 bytes
        help=f"Dark ink on light paper is inverted automatically. PNG or JPEG, up to {MAX_BYTES / 1e6:g} MB.",
    )
    if upload is None:
        return None, None, None
    name = upload.name if len(upload.name) <= MAX_NAME else upload.name[: MAX_NAME - 1] + "…"
    if upload.size > MAX_BYTES:  # the server's limit is not enforced everywhere (e.g. AppTest)
        return None, name, f"The file is {upload.size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB ({MAX_BYTES:,} bytes)."
    return upload.getvalue(), name, None


# ------------------------------------------------------------------------------------- answer


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


# ------------------------------------------------------------------------------ what you wrote


def _tally() -> dict[str, Labelled]:
    return st.session_state.setdefault(TALLY_KEY, {})


def truth_given() -> None:
    """Callback of "What did you write?": remember the label for the tally and store it with the
    archive item of this input if it was saved (otherwise it goes with the record when saved)."""
    mark = st.session_state.get(TRUTH_INPUT)
    truth = st.session_state.get(TRUTH_KEY)
    if mark is None:
        return
    tally = _tally()
    tally.setdefault(mark, Labelled()).truth = truth
    while len(tally) > TALLY_MAX:
        del tally[next(iter(tally))]
    record = st.session_state.get(RECORD_KEY)
    if record is None:
        return
    try:
        item = archive_ui.set_true_label(record, truth)
    except ArchiveError as e:
        st.session_state[TRUTH_FLASH] = ("error", f"The label was not stored in the archive. {e}")
        return
    if item is not None:
        said = "removed" if truth is None else f"stored as {truth}"
        st.session_state[TRUTH_FLASH] = ("success", f"Label {said} with archive item #{item}.")


def truth_control(mark: str) -> int | None:
    """"What did you write?": one click on 0-9 (click again to take it back). Returns the label."""
    if st.session_state.get(TRUTH_INPUT) != mark or TRUTH_KEY not in st.session_state:
        # A new input (or the page again): the control starts from what it was told about this input.
        st.session_state[TRUTH_INPUT] = mark
        st.session_state[TRUTH_KEY] = _tally().get(mark, Labelled()).truth
    return st.segmented_control("What did you write?", list(range(10)), key=TRUTH_KEY, on_change=truth_given,
                                help="Optional. Tell the page which digit you meant: it keeps score of how "
                                     "many of your digits each model reads right, and stores the label with "
                                     "the archive item.")


def tally_line(mark: str, truth: int | None, readings: dict[str, reading.Recognition]) -> None:
    """Record what each model read for a labelled input, and show the session's score per model."""
    tally = _tally()
    if truth is not None:
        tally.setdefault(mark, Labelled(truth=truth)).readings.update({m: r.answer for m, r in readings.items()})
    flash = st.session_state.pop(TRUTH_FLASH, None)
    if flash is not None:
        {"success": st.success, "error": st.error}[flash[0]](flash[1])
    scores: dict[str, list[int]] = {}
    for item in tally.values():
        if item.truth is None:
            continue
        for model, answer in item.readings.items():
            right, total = scores.setdefault(model, [0, 0])
            scores[model] = [right + (answer == str(item.truth)), total + 1]
    if scores:
        parts = [f"**{escape_markdown(m)}** {right} of {total}" for m, (right, total) in sorted(scores.items())]
        st.caption("Your digits this session, read right: " + " · ".join(parts),
                   help="Counted over the inputs you labelled. An unsure answer (“3 or 5?”) or “not a digit” "
                        "counts as not read right.")


# ------------------------------------------------------------------------------------ details


def is_calibrated(entry: ModelEntry) -> bool:
    """Are the model's probabilities calibrated (a temperature fitted by ``python -m cvae_core.robustness``)?"""
    return entry.info.recognition is not None


@st.cache_resource(max_entries=64, show_spinner=False)
def probability_figure(probs: np.ndarray, label: int, not_digit: float | None, calibrated: bool) -> go.Figure:
    """``figures.probability_bar``, built once per reading: the reruns of the same input (a save, a
    label, the noise slider back where it was) reuse it, shared and never changed
    (``st.plotly_chart`` sends a copy). Building it was about a sixth of the server's Python time
    per drawn digit."""
    return figures.probability_bar(probs, label, not_digit=not_digit, calibrated=calibrated)


def show_details(entry: ModelEntry, mine: reading.Recognition, more: reading.Details) -> None:
    """The probability of every label, for 2-D models the latent map with your digit on it, and
    (for a digit) your style as every digit: each at the full width of the column, titled in page
    text, so nothing is squeezed or cut off on a phone."""
    st.markdown("**The probability of each label**")
    st.plotly_chart(probability_figure(mine.probs, mine.label, mine.not_digit, is_calibrated(entry)),
                    key="draw_probs", config={"displayModeBar": False})
    points = latent_space.test_latents(entry, entry.signature, mine.label) if entry.latent_dim == 2 else None
    if points is not None:
        st.markdown(f"**Where your digit is among the test {mine.label}s**")
        st.plotly_chart(figures.latent_map(*points, point=more.mean, std=more.std, height=380),
                        key="draw_where", config={"displayModeBar": False})
        st.caption("The cross is where the model places the style of your digit; the rings show how far from "
                   "there it could be (one and two standard deviations): small rings, a style it is sure of.",
                   help="The cross is the posterior mean of the latent code under the recognised label; the solid "
                        "and dotted rings are the 1σ and 2σ ellipses of the posterior's spread (its standard "
                        "deviation per dimension).")
    else:
        st.caption(f"The latent map is drawn for 2-D models; {escape_markdown(entry.name)} has "
                   f"{entry.latent_dim} dimensions.")
    if mine.flagged:
        return  # a style is a digit's: there is none to draw as every digit
    st.markdown("**Your style as every digit**")
    st.image(figures.tile(more.restyled, 3, gap=4), output_format="PNG",
             caption="Your input encoded under the recognised label, then decoded as 0, 1, … 9 (left to right).")


def make_record(entry: ModelEntry, mine: reading.Recognition, recon: np.ndarray, x: np.ndarray, sigma: float,
                source: str, data: bytes, filename: str | None, truth: int | None,
                partner: ModelEntry | None, theirs: reading.Recognition | None) -> dict[str, Any]:
    classes = len(mine.probs)
    return {
        "model": entry.name, "source": source, "label": mine.label, "confidence": mine.confidence,
        "sigma": sigma, "input_image": x, "recon_image": recon,
        "original": inputs.original_image(data), "filename": filename, "true_label": truth,
        "probs": mine.probs.tolist(), "log_likelihoods": mine.log_px[:classes].tolist(),
        "not_digit": mine.not_digit,
        "partner_model": None if partner is None else partner.name,
        "partner_label": None if theirs is None else theirs.label,
        "partner_confidence": None if theirs is None else theirs.confidence,
        "finished": True,  # as saved now; a drawing that goes on after it was saved is marked unfinished
    }


@st.fragment
def save_controls(record: dict[str, Any]) -> None:
    """"Save to archive" in a fragment of its own: pressing it reruns these lines, not the whole
    reading (which was a third of the server's CPU per saved digit)."""
    archive_ui.save_button(record, key="draw_save")


def archive_controls(entry: ModelEntry, record: dict[str, Any], mark: str, source: str) -> None:
    st.session_state[RECORD_KEY] = record
    if source == "canvas":
        archive_ui.drawing_shown(record, mark=mark)  # saved automatically once finished (Clear, a label)
    save_controls(record)
    if source == "upload" and archive_ui.autosave_enabled():
        # Each upload is saved once per model; moving the noise slider is not a new input.
        done = st.session_state.setdefault("draw_autosaved", set())
        if (entry.signature, mark) not in done:
            archive_ui.autosave(record)
            done.add((entry.signature, mark))


@st.fragment
def results(entry: ModelEntry, pixels: np.ndarray, source: str, data: bytes, filename: str | None) -> None:
    """Everything that depends on the input, the answer first: it is on screen before the partner
    model is loaded and read and before the images and charts are drawn."""
    answer = st.container()
    sigma = st.slider("Noise σ", 0.0, 0.5, 0.0, 0.05, key="draw_sigma",
                      help="Adds Gaussian noise with a fixed seed (the paper's robustness experiment).")
    x = inputs.noisy(pixels, sigma)
    mark = hashlib.sha256(data).hexdigest()
    try:
        mine, more = reading.read(entry, entry.signature, x)
        with answer:
            show_answer(entry, mine)
            partner_line = st.empty()
            truth = truth_control(mark)
            tally = st.container()
        row = image_slots(4 if source == "upload" else 3)
        if source == "upload":
            original = inputs.original_image(data)
            if original is not None:
                shown = original.copy()
                shown.thumbnail((UPLOAD_SIDE, UPLOAD_SIDE))  # a phone photo is not sent back at full size
                row[0].image(shown, caption="Your upload", width="stretch")
            row = row[1:]
        row[0].image(figures.upscale(x, 4), caption="What the model sees (28×28)", output_format="PNG", width="stretch")
        row[1].image(figures.upscale(more.recon, 4), caption=f"Reconstruction by {entry.name}", output_format="PNG",
                     width="stretch")
        partner = cached_models.partner_model(entry)
        theirs = None
        if partner is not None:
            theirs, their_details = reading.read(partner, partner.signature, x)
            row[2].image(figures.upscale(their_details.recon, 4), output_format="PNG", width="stretch",
                         caption=f"by {partner.name}, which reads {theirs.answer}")
        with partner_line.container():
            show_partner_line(entry, mine, theirs, partner)
        readings = {entry.name: mine} | ({partner.name: theirs} if partner is not None else {})
        with tally:
            tally_line(mark, truth, readings)
        show_details(entry, mine, more)
    except Exception:  # a bug must not show a traceback; the log has the details
        log.exception("reading an input failed")
        st.error("Something went wrong while reading this input. It has been logged; please try another one.")
        return
    archive_controls(entry, make_record(entry, mine, more.recon, x, sigma, source, data, filename, truth,
                                        partner, theirs), mark, source)


def image_slots(count: int) -> list[DeltaGenerator]:
    """``count`` places of ``IMAGE_SIDE`` pixels in a row that wraps when they do not fit."""
    row = st.container(horizontal=True, gap="small")
    return [row.container(width=IMAGE_SIDE) for _ in range(count)]


def render(left: DeltaGenerator, right: DeltaGenerator, mode: str, canvas: Any) -> None:
    """The page below its input widgets; ``canvas`` is the canvas's result in Draw mode (None while
    an Undo is on its way to the canvas), else None."""
    filename, rgba, problem = None, None, None
    if mode == "Upload":
        with left:
            data, filename, problem = upload_input()  # the uploader itself shows the file's name
    else:
        data = None
        if canvas is not None and (canvas.json_data or {}).get("objects"):
            try:
                data, rgba = inputs.canvas_input(canvas)
            except InputError as e:
                problem = str(e)
    with right:
        entry = cached_models.require_model()
        if entry is None:
            return
        if problem:
            st.error(problem, icon=":material/error:")
            return
        if mode == "Draw" and canvas is None:
            st.caption("Redrawing the canvas…")  # an Undo or Clear on its way to the canvas
            return
        if data is None:
            st.info("Draw a digit on the black canvas, or switch to **Upload** for a photo of one.",
                    icon=":material/draw:")
            return
        pixels, problem = inputs.prepare(data) if rgba is None else inputs.prepare_pixels(rgba)
        if pixels is None:
            if mode == "Draw":
                st.info(f"{problem}", icon=":material/draw:")
            else:
                st.error(problem, icon=":material/error:")
            return
        results(entry, pixels, "canvas" if mode == "Draw" else "upload", data, filename)
