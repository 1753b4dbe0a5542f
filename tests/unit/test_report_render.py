"""The reports render in headless Chromium (Debian `chromium`), with nothing loaded from elsewhere, in CJK fonts.

For each kind of report (inspection, drill, evidence) the report writer makes the HTML and, through
``report.print_pdf`` (the one Chromium helper, ``report.chromium``), the PDF for the paper file:

* --dump-dom returns a DOM with the inline SVG charts; Chromium's log (--enable-logging=stderr --v=1)
  shows no load besides the page itself;
* every font the PDF embeds is a CJK font (Noto Sans CJK / its mono variant), so no text was set in a
  font without Chinese glyphs;
* every distinct Chinese character of the three pages, drawn in the pages' own font stack on a canvas,
  gives a distinct, non-blank bitmap unlike the missing-glyph box (tofu boxes all look the same);
* a screenshot of each page (and of the glyph probe) is kept under the test's tmp dir and copied to
  reports/screenshots/ (reports/ is git-ignored) for a reviewer to look at.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from archive_dr import evidence, report
from tests.unit.reportdata import DAY, NOW, drill_result, raw, rpo_fig

LOG_FLAGS = ["--enable-logging=stderr", "--v=1", "--window-size=1200,2400", "--hide-scrollbars"]
FILE_LOAD = re.compile(r"FileURLLoader::Start: (\S+)")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def extra_loads(stderr, page_url):
    """Resources Chromium loaded besides the page itself (--v=1 logs every file:// load)."""
    return [m.group(1) for m in FILE_LOAD.finditer(stderr) if m.group(1) != page_url]


def chromium(args, profile, timeout=90):
    assert report.chromium_path(), "chromium is not installed (scripts/install-deps.sh installs it)"
    return report.chromium(args, profile, timeout, flags=LOG_FLAGS)


def keep(shot):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, SCREENSHOTS / shot.name)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The three reports, written by the report writer with their PDFs (one set for the module)."""
    tmp = tmp_path_factory.mktemp("render")
    rep = tmp / "reports"
    hist = tmp / "h.json"
    res = None
    for i in range(4):
        res = report.build_inspection(raw(NOW + i * DAY, (300 + 120 * i) << 20), hist, now=NOW + i * DAY)
    ins = report.write(res, rep, pdf=True)
    drl = report.write(drill_result(240, 2.0), rep, pdf=True)
    bound = drill_result(300, 3.0, files=rpo_fig(60.0, False, "lower", note="no heartbeat file recovered"))
    bound["id"] = "d300-bound"
    report.write(bound, rep, pdf=False)
    import datetime as dt
    day = dt.date.fromtimestamp(NOW)
    ev = evidence.write(evidence.build(rep, day, day + dt.timedelta(days=5),
                                       {"rto_seconds": 600, "rpo_seconds": 60, "backup_success_rate_pct": 98,
                                        "verification_coverage_pct": 100}), tmp / "ev", pdf=True)
    return {"inspection": ins, "drill": drl, "evidence": ev}


def test_cjk_fonts_are_installed():
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30).stdout
    assert out.strip(), "no font for Chinese (scripts/install-deps.sh installs fonts-noto-cjk)"
    css = (report.TEMPLATES / "report.css").read_text()
    assert re.search(r'font-family: "Noto Sans CJK SC",[^;]*"WenQuanYi Micro Hei"[^;]*sans-serif;', css)


@pytest.mark.parametrize("kind", ["inspection", "drill", "evidence"])
def test_report_renders_in_headless_chromium(pages, tmp_path, kind):
    paths = pages[kind]
    url = Path(paths["html"]).resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 2
    assert "<h1>" in dom.stdout and "</html>" in dom.stdout
    assert FILE_LOAD.search(dom.stderr), "chromium did not log the page load: the check below would be vacuous"
    assert extra_loads(dom.stderr, url) == []
    text = unescape(re.sub(r"<[^>]+>", " ", dom.stdout))
    assert "None" not in text and "PLAY [" not in text and "TASK [" not in text
    assert 'href="%s"' % Path(paths["pdf"]).name in dom.stdout          # the page links its PDF
    shot = tmp_path / ("%s.png" % kind)
    sc = chromium(["--screenshot=%s" % shot, url], tmp_path / "profile-shot")
    assert sc.returncode == 0, sc.stderr[-2000:]
    assert shot.stat().st_size > 20000               # a rendered page, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert extra_loads(sc.stderr, url) == []
    keep(shot)


@pytest.mark.parametrize("kind", ["inspection", "drill", "evidence"])
def test_pdf_is_written_in_cjk_fonts(pages, kind):
    pdf = Path(pages[kind]["pdf"])
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and pdf.with_suffix(".html").exists()
    fonts = set(re.findall(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z0-9-]+)", data))
    assert fonts, "no embedded font found in %s" % pdf
    assert all(b"CJK" in f for f in fonts), fonts                     # never a font without Chinese glyphs


def test_chinese_glyphs_are_real_glyphs(pages, tmp_path):
    """Draw every distinct Chinese character of the three pages in the pages' font stack: each must give its
    own non-blank bitmap, none equal to the missing-glyph box (a private-use character has no glyph)."""
    chars = sorted({ch for kind in pages for ch in CJK.findall(unescape(Path(pages[kind]["html"]).read_text()))})
    assert len(chars) > 50
    css = (report.TEMPLATES / "report.css").read_text()
    probe = tmp_path / "glyphs.html"
    probe.write_text("""<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><style>%s</style></head>
<body><h1>字形检查 glyph probe</h1><p id="text">%s</p><script>
const chars = %s, tofu = ["\\ue000", "\\ue001", "\\u0378"];
const font = "32px " + getComputedStyle(document.body).fontFamily;
const cv = document.createElement("canvas"); cv.width = 40; cv.height = 40;
const cx = cv.getContext("2d", {willReadFrequently: true});
function bitmap(ch) {
  cx.clearRect(0, 0, 40, 40); cx.font = font; cx.fillStyle = "#000"; cx.textBaseline = "top";
  cx.fillText(ch, 2, 2);
  const d = cx.getImageData(0, 0, 40, 40).data; let s = "", ink = 0;
  for (let i = 3; i < d.length; i += 4) { s += d[i] > 127 ? "1" : "0"; ink += d[i] > 127; }
  return {s: s, ink: ink};
}
const res = {font: font, glyphs: chars.map(c => { const b = bitmap(c); return [c, b.s, b.ink]; }),
             tofu: tofu.map(c => bitmap(c).s)};
document.body.setAttribute("data-result", JSON.stringify(res));
</script></body></html>""" % (css, "".join(chars), json.dumps(chars)), encoding="utf-8")
    dom = chromium(["--dump-dom", probe.as_uri()], tmp_path / "profile")
    m = re.search(r'data-result="([^"]*)"', dom.stdout)
    assert m, dom.stderr[-2000:]
    res = json.loads(unescape(m.group(1)))
    assert "Noto Sans CJK SC" in res["font"]
    blank = [c for c, _, ink in res["glyphs"] if ink == 0]
    boxes = [c for c, bits, _ in res["glyphs"] if bits in res["tofu"]]
    seen = {}
    for c, bits, _ in res["glyphs"]:
        seen.setdefault(bits, []).append(c)
    same = [cs for cs in seen.values() if len(cs) > 1]
    assert not blank and not boxes and not same, (blank, boxes, same)
    shot = tmp_path / "glyphs.png"
    chromium(["--screenshot=%s" % shot, "--window-size=1200,900", probe.as_uri()], tmp_path / "profile-shot")
    keep(shot)


def test_a_missing_resource_would_be_detected(tmp_path):
    """The log check is not vacuous: a page that references an image shows the extra load."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1><img src="missing.png"></body></html>')
    p = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert extra_loads(p.stderr, page.as_uri()) == [(tmp_path / "missing.png").as_uri()]
