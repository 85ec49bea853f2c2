#!/usr/bin/env python3
"""html_report.py - the HTML report, checked in a real browser (issue 10).

Opens `mxray --html` reports in headless Chromium through ChromeDriver
(Debian's chromium, chromium-driver and python3-selenium; scripts/setup.sh
installs them) and checks:
  - the demo capture (a lab capture): the SMTP session's diagram has one arrow
    per command and reply record of the JSON output, in order, with the
    expected texts, the 550 coloured as a failure, the STARTTLS session's TLS
    band, and a click on an arrow opens its details (line, frame, meaning);
  - the filters: "failed only" leaves the sessions with failures, the
    protocol filter one protocol; unticking shows them all again;
  - without JavaScript, the diagrams still show;
  - a hostile capture (banners and names made of markup, script, terminal
    escapes and bidi overrides) injects nothing: no alert, one script (ours),
    no event-handler attribute, no image, and its text shown literally;
  - teaching (issue 27): the colour legend, IMAP untagged lines dashed and grey unlike commands
    and tagged completions, counts of one in the singular, the TLS band, the attachment mark
    drawn rather than an emoji, an EHLO reply's extensions in its details.
usage: html_report.py MXRAY [--screenshot PNG]   (exit 77: skipped)
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:
    print("html_report: skipped: python3-selenium is not installed (scripts/setup.sh installs it)")
    sys.exit(77)
for exe in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
    if not os.access(exe, os.X_OK):
        print("html_report: skipped: %s is missing (scripts/setup.sh installs chromium and chromium-driver)" % exe)
        sys.exit(77)

MX = os.path.abspath(sys.argv[1])
SHOT = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--screenshot" else None
failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what)


def browser(js=True):
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1200,1600", "--hide-scrollbars"):
        o.add_argument(a)
    if not js:
        o.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    # Record alert() instead of showing it: an injected script would call it.
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source":
                      "window.__alerts=[];window.alert=window.confirm=window.prompt="
                      "function(m){window.__alerts.push(String(m));};"})
    return d


def report(pcap, out, tmp):
    subprocess.run([MX, "-q", "--html", out, "--json", os.path.join(tmp, "r.json"), pcap], check=True)
    return [json.loads(line) for line in open(os.path.join(tmp, "r.json"))]


def visible_sessions(d):
    return sorted(s.get_attribute("id") for s in d.find_elements(By.CSS_SELECTOR, "section.ses")
                  if s.is_displayed())


def failed_flows(recs):
    """Flows with a failure record (the failure model), from the JSON."""
    return {r["flow"] for r in recs if r.get("type") == "failure"}


def demo(tmp):
    out = os.path.join(tmp, "demo.html")
    recs = report(os.path.join(REPO, "pcaps", "demo.pcapng"), out, tmp)
    d = browser()
    try:
        d.get("file://" + out)
        check(d.title == "mxray report", "page title")
        f1 = d.find_element(By.ID, "f1")
        svg = f1.find_element(By.CSS_SELECTOR, "svg.seq")
        c2s = svg.find_elements(By.CSS_SELECTOR, "g.st.k0")
        s2c = svg.find_elements(By.CSS_SELECTOR, "g.st.k1")
        want_c2s = [r for r in recs if r.get("flow") == 1 and r.get("dir") == "c2s"]
        want_s2c = [r for r in recs if r.get("flow") == 1 and r.get("dir") == "s2c"]
        check(len(c2s) == len(want_c2s), "session 1: %d client arrows, JSON has %d" % (len(c2s), len(want_c2s)))
        check(len(s2c) == len(want_s2c), "session 1: %d server arrows, JSON has %d" % (len(s2c), len(want_s2c)))
        labels = [t.text for t in svg.find_elements(By.CSS_SELECTOR, "g.st text.lb")]
        order = ["EHLO client.lab.test", "MAIL FROM:<carol@lab.test>", "RCPT TO:<alice@lab.test>",
                 "RCPT TO:<nobody@lab.test>", "550 5.1.1", "DATA", "250 2.0.0 Ok: queued", "QUIT", "221 2.0.0"]
        pos = [next((i for i, l in enumerate(labels) if l.startswith(w)), -1) for w in order]
        check(-1 not in pos and pos == sorted(pos), "session 1 arrows in order: %s in %s" % (order, labels))
        # Every command's verb and every reply's code, in the JSON's order.
        verbs = [r["verb"] for r in want_c2s if r["type"] == "smtp.command"]
        shown = [l.split()[0] for l in labels if l.split() and l.split()[0].isalpha() and l.split()[0].isupper()]
        check(shown == verbs, "commands %s shown as %s" % (verbs, shown))
        codes = [str(r["code"]) for r in want_s2c if r["type"] == "smtp.reply"]
        check([l[:3] for l in labels if l[:3].isdigit()] == codes, "reply codes %s" % codes)
        bad = [g for g in s2c if "b" in g.get_attribute("class").split()]
        check(len(bad) == 1 and bad[0].find_element(By.CSS_SELECTOR, "text.lb").text.startswith("550 5.1.1"),
              "the 550 arrow is the one failure")
        # Click it: the detail pane shows the line, its frame and its meaning.
        rej = next(r for r in want_s2c if r.get("code") == 550)
        bad[0].click()
        pane = d.find_element(By.ID, "mx-pane")
        check(pane.is_displayed(), "detail pane opens on click")
        check("frame %d" % rej["frames"][0] in pane.text and "Bad destination mailbox address" in pane.text,
              "detail pane: frame and enhanced-code meaning: %r" % pane.text[:300])
        # The STARTTLS session: a TLS band, the dialogue dark after it.
        tls_flow = next(r["flow"] for r in recs if r["type"] == "tls")
        sec = d.find_element(By.ID, "f%d" % tls_flow)
        check(len(sec.find_elements(By.CSS_SELECTOR, "rect.band")) == 1 and
              len(sec.find_elements(By.CSS_SELECTOR, "rect.dark")) == 1, "TLS band in session %d" % tls_flow)
        check("TLS 1.3" in sec.find_element(By.CSS_SELECTOR, "text.bandt").text, "TLS band names the version")
        d.find_element(By.TAG_NAME, "body").click()
        # Filters.
        every = sorted("f%d" % r["flow"] for r in recs if r["type"] == "flow")
        check(visible_sessions(d) == every, "all sessions shown at first")
        d.find_element(By.ID, "mx-failed").click()
        want = sorted("f%d" % f for f in failed_flows(recs))
        check(want and visible_sessions(d) == want, "failed only: %s, want %s" % (visible_sessions(d), want))
        d.find_element(By.ID, "mx-failed").click()
        check(visible_sessions(d) == every, "unticked: all sessions again")
        Select(d.find_element(By.ID, "mx-proto")).select_by_value("imap")
        want = sorted("f%d" % r["flow"] for r in recs if r["type"] == "flow" and r["proto"] == "imap")
        check(visible_sessions(d) == want, "protocol filter imap: %s" % visible_sessions(d))
        Select(d.find_element(By.ID, "mx-proto")).select_by_value("")
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        check(not errors, "no errors in the console: %s" % errors[:3])
        if SHOT:
            d.set_window_size(1200, 1500)
            d.execute_script("window.scrollTo(0, document.getElementById('f1').offsetTop - 10)")
            bad[0].click()     # its details in the pane, as a reader would see them
            d.save_screenshot(SHOT)
    finally:
        d.quit()
    d = browser(js=False)
    try:
        d.get("file://" + out)
        svg = d.find_element(By.CSS_SELECTOR, "#f1 svg.seq")
        check(svg.is_displayed() and len(svg.find_elements(By.CSS_SELECTOR, "g.st.k0")) == len(want_c2s),
              "without JavaScript the diagram shows")
        check(not d.find_element(By.CSS_SELECTOR, ".filters").is_displayed(),
              "without JavaScript the filters, which need it, are hidden")
    finally:
        d.quit()


def teaching(tmp):
    """Issue 27: the legend, untagged lines drawn apart, counts spelled right, the TLS band,
    the attachment mark drawn (no emoji a font may lack), multi-line replies in the details."""
    import re
    out = os.path.join(tmp, "teach.html")
    recs = report(os.path.join(REPO, "pcaps", "demo.pcapng"), out, tmp)
    raw = open(out, encoding="utf-8").read()
    check(not any(ord(c) > 0xFFFF for c in raw), "no character outside the BMP (emoji) in the demo report")
    d = browser()
    try:
        d.get("file://" + out)
        legend = d.find_elements(By.CSS_SELECTOR, "svg.legend")
        check(len(legend) == 1 and legend[0].is_displayed(), "one legend, shown")
        ltext = legend[0].text if legend else ""
        for words in ("command", "success", "temporary failure", "failure (5xx", "untagged", "pipelined", "TLS"):
            check(words in ltext, "legend says %r: %r" % (words, ltext))
        imap = next(r["flow"] for r in recs if r["type"] == "flow_start" and r.get("proto") == "imap")
        sec = d.find_element(By.ID, "f%d" % imap)
        untagged = sec.find_elements(By.CSS_SELECTOR, "g.st.k1.u")
        want = [r for r in recs if r.get("flow") == imap and r["type"] in ("imap.untagged", "imap.continuation")]
        check(len(untagged) == len(want) > 0, "session %d: %d untagged arrows, JSON has %d" %
              (imap, len(untagged), len(want)))
        tagged = [g for g in sec.find_elements(By.CSS_SELECTOR, "g.st.k1") if "u" not in g.get_attribute("class").split()]
        cmds = sec.find_elements(By.CSS_SELECTOR, "g.st.k0")
        style = lambda g: (g.find_element(By.CSS_SELECTOR, "path.ar").value_of_css_property("stroke"),
                           g.find_element(By.CSS_SELECTOR, "path.ar").value_of_css_property("stroke-dasharray"))
        us = {style(g) for g in untagged}
        check(len(us) == 1 and list(us)[0][1] not in ("none", ""), "untagged arrows dashed: %s" % us)
        check(tagged and cmds and not us & {style(g) for g in tagged + cmds},
              "untagged arrows unlike commands and tagged completions")
        check(all(g.find_element(By.CSS_SELECTOR, "text.ut").text == "untagged" for g in untagged
                  if "cont" not in g.get_attribute("class").split()), "untagged arrows labelled 'untagged'")
        # The EHLO reply's details: its extensions one per line.
        ehlo = next(g for g in d.find_elements(By.CSS_SELECTOR, "#f1 g.st.k1")
                    if g.find_element(By.CSS_SELECTOR, "text.lb").text.startswith("250 mx.lab.test"))
        ehlo.click()
        pane = d.find_element(By.ID, "mx-pane").text
        check("PIPELINING: " in pane and "(RFC 2920)" in pane, "EHLO details list the extensions: %r" % pane[:300])
        d.find_element(By.TAG_NAME, "body").click()
        band = d.find_element(By.CSS_SELECTOR, "text.bandt").text
        check(band.startswith("TLS 1.3") and "TLS TLS" not in band, "TLS band: %r" % band)
    finally:
        d.quit()
    # One session: "1 session", "1 flow", "1 finding", "... commands" spelled right; the paperclip drawn.
    out = os.path.join(tmp, "one.html")
    report(os.path.join(REPO, "pcaps", "smtp", "attachment.pcap"), out, tmp)
    raw = open(out, encoding="utf-8").read()
    check("\U0001F4CE" not in raw and not any(ord(c) > 0xFFFF for c in raw), "no paperclip emoji")
    d = browser()
    try:
        d.get("file://" + out)
        text = d.execute_script("return document.body.textContent")
        bad = re.findall(r"\b1 (?:sessions|flows|findings|frames|commands|transactions|failures)\b", text)
        check(not bad and "1 session," in text and "1 flow;" in text and "1 finding." in text,
              "counts of one in the singular: %s" % bad)
        clips = d.find_elements(By.CSS_SELECTOR, "table.mime tr.att svg.clip")
        check(len(clips) == 1 and clips[0].is_displayed() and clips[0].size["width"] > 0,
              "the attachment's mark is drawn (%d)" % len(clips))
    finally:
        d.quit()


HOSTILE = [
    {"port": 25, "turns": [
        ["s", '220 <script>alert("banner")</script> "><img src=x onerror=alert(1)> \x1b]0;pwned\x07 \u202eevil\r\n'],
        ["c", "EHLO </title></svg><script>alert(2)</script>\r\n"],
        ["s", "250-x <style>*{display:none}</style>\r\n250 AUTH PLAIN\r\n"],
        ["c", "MAIL FROM:<a@b'onmouseover='alert(3)>\r\n"],
        ["s", "250 2.1.0 ok\r\n"],
        ["c", "RCPT TO:<\"><svg onload=alert(4)>@x>\r\n"],
        ["s", "250 2.1.5 ok\r\n"],
        ["c", "DATA\r\n"],
        ["s", "354 go\r\n"],
        ["c", "Subject: <script>alert(5)</script>\r\nFrom: <iframe src=javascript:alert(6)>\r\n"
              "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
              "Content-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\n"
              "Content-Disposition: attachment; filename=\"<img src=x onerror=alert(7)>.txt\"\r\n\r\n"
              "data\r\n--b--\r\n.\r\n"],
        ["s", "550 5.7.1 <b onclick=alert(8)>no</b> \x1b[2J\r\n"],
        ["c", "QUIT\r\n"],
        ["s", "221 bye\r\n"]]},
    {"port": 143, "turns": [
        ["s", "* OK <svg onload=alert(9)> ready\r\n"],
        ["c", "<x> LOGIN \"</script>\" \"pw\"\r\n"],
        ["s", "<x> NO [ALERT] <script>alert(10)</script>\r\n"]]},
]


def hostile(tmp):
    pcap = os.path.join(tmp, "hostile.pcap")
    pcapgen.sessions_to_pcap(HOSTILE, pcap)
    out = os.path.join(tmp, "hostile.html")
    report(pcap, out, tmp)
    raw = open(out, encoding="utf-8").read()
    check("\x1b" not in raw and "\u202e" not in raw and "\x07" not in raw,
          "no raw escape, bell or bidi override in the file")
    d = browser()
    try:
        d.get("file://" + out)
        d.find_element(By.ID, "mx-failed").click()   # run our script's paths too
        d.find_element(By.ID, "mx-failed").click()
        for g in d.find_elements(By.CSS_SELECTOR, "g.st")[:40]:
            if g.is_displayed():
                g.click()
        check(d.execute_script("return window.__alerts") == [], "no alert: %s" % d.execute_script("return window.__alerts"))
        check(d.execute_script("return document.scripts.length") == 1, "one script, ours")
        check(d.execute_script("return document.querySelectorAll('img,iframe,object,embed').length") == 0,
              "no image or frame")
        check(d.execute_script("return document.querySelectorAll('style').length") == 1, "one style sheet, ours")
        check(not d.execute_script("return [].some.call(document.querySelectorAll('*'),function(e){"
                                   "return [].some.call(e.attributes,function(a){return /^on/i.test(a.name);});})"),
              "no event-handler attribute")
        check(d.title == "mxray report", "title not changed")
        text = d.execute_script("return document.body.textContent")
        for lit in ('<script>alert("banner")</script>', "</title></svg><script>alert(2)</script>",
                    "\\x1b]0;pwned\\x07", "\\u202eevil", "<b onclick=alert(8)>no</b>"):
            check(lit in text, "shown literally: %r" % lit)
    finally:
        d.quit()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        demo(tmp)
        teaching(tmp)
        hostile(tmp)
    print("html_report: %d passed, %d failed" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
