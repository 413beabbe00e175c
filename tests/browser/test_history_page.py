"""The history table in a real Chromium at 1280 px: a Reason column, and times that stay
on one line beside it."""

import pytest

from tests.browser.conftest import screenshot
from tests.helpers import add_history

pytestmark = pytest.mark.browser

LONG_REASON = (
    "Monthly patching of the application servers as agreed with the change advisory "
    "board, see CHG-1234; the users were told on Monday"
)

#: The height of an element's text, and of one line of text in it. (The cell itself is
#: as tall as its row, which a long reason makes taller.)
TEXT_AND_LINE_HEIGHT = """cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const text = range.getBoundingClientRect().height;
    const probe = document.createElement("span");
    probe.textContent = "x";
    cell.appendChild(probe);
    const line = probe.getBoundingClientRect().height;
    probe.remove();
    return [text, line];
}"""


#: The table is wholly in sight in its scrolling wrapper.
FITS = "table => table.parentElement.scrollWidth <= table.parentElement.clientWidth"


def test_at_1280_px_every_time_stays_on_one_line_beside_the_reason(
    sign_in, live_server, environment, manager, member
):
    add_history(environment, manager, 5, reason=LONG_REASON)
    page = sign_in("tom", viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/history/?type=all")

    rows = page.get_by_test_id("history-row")
    assert rows.count() == 5
    first = rows.first
    assert first.locator("td[data-label=Reason]").inner_text() == LONG_REASON
    for label in ("Started", "Finished"):
        cell = first.locator(f"td[data-label={label}]")
        text, line = cell.evaluate(TEXT_AND_LINE_HEIGHT)
        assert text == pytest.approx(line, abs=1), (label, cell.inner_text(), text, line)
    text, line = first.locator("td[data-label=Reason]").evaluate(TEXT_AND_LINE_HEIGHT)
    assert text > 1.5 * line  # the reason wraps instead
    assert page.get_by_test_id("time-zone").inner_text().startswith("Times in ")
    # Nothing of the table is out of sight at 1280 px, here or on the details page.
    screenshot(page, "history-1280.png")
    assert page.get_by_test_id("history").evaluate(FITS)
    page.goto(f"{live_server.url}{environment.get_absolute_url()}")
    assert page.get_by_test_id("history-row").count() == 5
    assert page.get_by_test_id("history").evaluate(FITS)
