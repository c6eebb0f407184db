"""The README's screenshots: every image it shows is in the repo, small, and one the script makes;
the script answers --help without a browser or an Airflow. (`make screenshots` takes them.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from orchestrator.config import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
SCRIPT = REPO_ROOT / "scripts" / "screenshots.py"
IMAGES = re.findall(r"!\[[^\]]*\]\((docs/images/[^)\s]+\.png)\)", README)


def script_help() -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.subprocess
def test_the_readme_shows_each_screenshot_the_script_takes():
    made = set(re.search(r"^images: (.*)$", script_help(), re.M).group(1).split(", "))
    assert {p.removeprefix("docs/images/") for p in IMAGES} == made


def test_every_image_the_readme_shows_exists_and_is_a_small_png():
    assert IMAGES, "the README shows no screenshot"
    for rel in IMAGES:
        path = REPO_ROOT / rel
        assert path.is_file(), f"README shows {rel}, which is not in the repo (make screenshots)"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{rel} is not a PNG"
        assert len(data) < 300 * 1024, f"{rel} is {len(data) // 1024} KB (keep each under 300 KB)"


def caption(rel: str) -> str:
    """The paragraph right under an image line."""
    return README.split(f"({rel})", 1)[1].lstrip("\n").split("\n\n", 1)[0]


def test_each_image_has_a_caption():
    """An image line is followed by an italic caption; the Slack one says it is drawn locally."""
    for rel in IMAGES:
        text = caption(rel)
        assert text.startswith("*") and text.endswith("*"), f"no caption under {rel}: {text!r}"
    assert "locally" in caption("docs/images/slack-alert.png")


def test_the_readme_says_how_to_regenerate_them():
    assert "make screenshots" in README


def test_the_slack_picture_draws_what_the_renderer_sends():
    """The page holds the channel alerting.yml routes to and every text of render_slack's blocks
    (mrkdwn turned into HTML), so the picture cannot drift from the real message."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import slack_page
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    alert = slack_page.sample_alert()
    channel, payload = slack_page.channel_and_message(alert)
    page = slack_page.alert_html(alert)
    assert channel == "#finance-data" and channel in page
    assert payload["blocks"][0]["text"]["text"] in page  # the header
    assert "@finance-data" in page and "<@U00FINANCE>" not in page  # the owner's mention, drawn
    assert "fct_payments" in page and "View log" in page and "<pre>" in page
