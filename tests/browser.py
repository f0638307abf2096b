"Headless Chromium for the browser tests: Debian `chromium` + `chromium-driver` driven by selenium, never anything downloaded."
import os, shutil
from pathlib import Path
import pytest

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run']
HOW = 'as root, `make browser-deps` (apt-get install -y chromium chromium-driver) installs them'

def chromium_or_skip():
    "Paths of the Chromium binary and of its driver, or skip the test saying what is missing."
    chrome = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver') or next((p for p in ['/usr/lib/chromium/chromedriver'] if Path(p).exists()), None)
    if chrome is None or driver is None:
        pytest.skip(f"Chromium is not installed ({'chromium' if chrome is None else 'chromedriver'} not found); {HOW}")
    try: import selenium  # noqa: F401
    except ImportError: pytest.skip('selenium is not installed: `pip install -e ".[dev]"` installs it')
    return chrome, driver

def make_driver(size=(1280, 1000)):
    "A headless Chromium session with the project's flags, its console log kept."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chrome, driver = chromium_or_skip()
    os.environ.setdefault('SE_OFFLINE', 'true')   # selenium-manager must not look for drivers online
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in FLAGS + [f'--window-size={size[0]},{size[1]}']: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(service=Service(driver), options=opts)

def full_screenshot(d, path):
    "Save a screenshot of the whole page (not only the window) as PNG."
    import base64
    m = d.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
    w, h = int(m['width']), min(int(m['height']), 16000)
    png = d.execute_cdp_cmd('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True,
                                                       'clip': {'x': 0, 'y': 0, 'width': w, 'height': h, 'scale': 1}})
    Path(path).write_bytes(base64.b64decode(png['data']))
    return path
