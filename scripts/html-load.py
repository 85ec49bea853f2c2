#!/usr/bin/python3
"""html-load - how long an mxray HTML report takes to open in Chromium.

usage: scripts/html-load.py REPORT.html... [--runs N] [--no-js]

Loads each report in headless Chromium (Debian's chromium, chromium-driver,
python3-selenium) after a warm-up load, N times (default 3), and prints the
file size and the medians of: DOMContentLoaded (the page parsed and our script
run: filters ready), load, and first contentful paint, in milliseconds.
Machines here are shared; compare reports measured in the same run.
"""
import os
import statistics
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def main():
    args = sys.argv[1:]
    runs, js = 3, True
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    if "--no-js" in args:
        args.remove("--no-js")
        js = False
    if not args:
        sys.exit(__doc__)
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1200,1600"):
        o.add_argument(a)
    if not js:
        o.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(600)
    try:
        print("%-40s %10s %8s %8s %8s %8s" % ("report", "bytes", "DCL ms", "load ms", "FCP ms", "wall s"))
        for path in args:
            path = os.path.abspath(path)
            d.get("file://" + path)          # warm-up
            dcl, load, fcp, wall = [], [], [], []
            for _ in range(runs):
                d.get("about:blank")
                t = time.time()
                d.get("file://" + path)
                wall.append(time.time() - t)
                a, b = d.execute_script("var t=performance.timing;return [t.domContentLoadedEventEnd-"
                                        "t.navigationStart,t.loadEventEnd-t.navigationStart]")
                dcl.append(a)
                load.append(b)
                f = d.execute_script("var e=performance.getEntriesByName('first-contentful-paint')[0];"
                                     "return e?e.startTime:0")
                fcp.append(f)
            print("%-40s %10d %8.0f %8.0f %8.0f %8.2f" % (os.path.basename(path)[-40:], os.path.getsize(path),
                  statistics.median(dcl), statistics.median(load), statistics.median(fcp),
                  statistics.median(wall)))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
