"""The console in a real browser: headless Chromium driven by Selenium, against a live `cofre serve`.

Run by Tests/browser/run.sh, which starts the vault and passes COFRE_URL, SCREENSHOTS and the keys
KEY_DPO, KEY_AUDITOR, KEY_CRM, KEY_BOT in the environment. Each test prints PASS or FAIL; the last
line is the summary; the exit status is non-zero on any failure.
"""
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["COFRE_URL"]
SHOTS = os.environ["SCREENSHOTS"]
KEYS = {name: os.environ[f"KEY_{name.upper()}"] for name in ("dpo", "auditor", "crm", "bot")}


# --- the API, as a service would call it -----------------------------------------------------------

def api(method, path, key=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def seed():
    """Subjects, reveals and denials whose counts the charts must show."""
    subjects = []
    for i in range(4):
        status, _, body = api("POST", "/v1/subjects", KEYS["crm"], {
            "external_ref": f"browser-{i}", "fields": {"name": f"Pessoa {i}", "cpf": ["52998224725", "11144477735", "39053344705", "15350946056"][i],
                                                      "phone": f"+55119{i:08d}"}})
        assert status == 201, body
        subjects.append(json.loads(body))
    phones = [s["tokens"]["phone"] for s in subjects]
    assert api("POST", "/v1/detokenize", KEYS["crm"], {"purpose": "collection-call", "tokens": phones})[0] == 200      # 4 allowed
    assert api("POST", "/v1/detokenize", KEYS["bot"], {"purpose": "collection-whatsapp", "tokens": phones[:3]})[0] == 200  # 3 denied
    return subjects


# --- the browser -------------------------------------------------------------------------------------

def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,800",
                "--no-first-run", "--disable-background-networking", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)


class Session:
    def __init__(self):
        self.driver = browser()
        self.errors = []

    def open(self, path):
        self.driver.get(URL + path)
        self.check_console(path)

    def check_console(self, where):
        """No error in the browser's console: a CSP violation, a failed load, a script error. The one
        message let through is Chromium's note that the page itself came with a 4xx status: a refused
        sign-in or a forged form is answered with its true status, which is what the tests expect."""
        page = self.driver.current_url.split("?")[0]
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            if entry.get("level") != "SEVERE":
                continue
            if message.startswith(page + " - Failed to load resource: the server responded with a status of 4"):
                continue
            self.errors.append(f"{where}: {message}")

    def shot(self, name):
        path = os.path.join(SHOTS, name)
        self.driver.save_screenshot(path)
        print(f"  screenshot: {path}")

    def sign_in(self, key):
        self.open("/console/login")
        self.driver.find_element(By.ID, "key").send_keys(key)
        self.click_and_wait(self.driver.find_element(By.ID, "login"), "after sign-in")

    def click_and_wait(self, element, where):
        """Clicks what submits a form or follows a link, and waits for the next page to replace this one."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 10).until(lambda d: self.stale(old))
        WebDriverWait(self.driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
        self.check_console(where)

    @staticmethod
    def stale(element):
        try:
            element.tag_name
            return False
        except Exception:
            return True

    def el(self, id_):
        return self.driver.find_element(By.ID, id_)

    def quit(self):
        self.driver.quit()


# --- the tests ---------------------------------------------------------------------------------------

def test_login_page_headers_and_language(ctx):
    status, headers, _ = api("GET", "/console/login")
    csp = headers.get("Content-Security-Policy", "")
    assert status == 200 and "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, csp
    assert headers.get("X-Content-Type-Options") == "nosniff" and headers.get("Referrer-Policy") == "no-referrer"
    s = Session()
    try:
        s.open("/console/login")
        assert "Entrar" in s.driver.page_source, "Portuguese by default"
        s.shot("console-login.png")
        s.click_and_wait(s.el("lang"), "English")
        assert s.el("login").text == "Sign in", s.el("login").text
        s.click_and_wait(s.el("lang"), "Português")
        assert s.el("login").text == "Entrar"
        assert not s.errors, s.errors
    finally:
        s.quit()


def test_service_key_refused(ctx):
    s = Session()
    try:
        s.sign_in(KEYS["crm"])
        assert "/console/login" in s.driver.current_url
        assert "serviço" in s.el("error").text, s.el("error").text
        assert s.driver.get_cookie("cofre_session") is None
        assert not s.errors, s.errors
    finally:
        s.quit()


def test_auditor_events_charts_verify_logout(ctx):
    s = Session()
    try:
        s.sign_in(KEYS["auditor"])
        assert s.driver.current_url.endswith("/console/audit/events"), s.driver.current_url
        # Filter: denied detokenize decisions only.
        s.el("f-action").send_keys("detokenize")
        Select(s.el("f-decision")).select_by_visible_text("deny")
        s.click_and_wait(s.el("apply"), "events filtered")
        rows = s.driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")
        assert len(rows) == 3, len(rows)
        assert all(r.get_attribute("data-decision") == "deny" for r in rows)
        assert "decision=deny" in s.driver.current_url
        s.shot("console-events.png")

        s.open("/console/audit/charts?bucket=hour")
        chart = s.el("chart-purpose")
        assert chart.get_attribute("data-total") == "7", chart.get_attribute("data-total")
        assert s.el("chart-code").get_attribute("data-total") == "3"
        call = s.driver.find_element(By.CSS_SELECTOR, '#totals tr[data-purpose="collection-call"]')
        assert [c.text for c in call.find_elements(By.TAG_NAME, "td")] == ["collection-call", "4", "0"]
        bot = s.driver.find_element(By.CSS_SELECTOR, '#totals tr[data-purpose="collection-whatsapp"]')
        assert [c.text for c in bot.find_elements(By.TAG_NAME, "td")] == ["collection-whatsapp", "0", "3"]
        assert s.driver.find_element(By.CSS_SELECTOR, '#chart-service text[data-key="crm"]').text == "4"
        assert len(s.driver.find_elements(By.CSS_SELECTOR, "#chart-purpose rect")) >= 2, "bars are drawn"
        s.shot("console-charts.png")

        s.open("/console/audit/verify")
        assert s.el("verify-status").get_attribute("data-ok") == "true"
        assert s.el("checkpoint").get_attribute("href").endswith("/console/audit/checkpoint.json")
        s.shot("console-verify.png")

        s.click_and_wait(s.el("logout"), "signed out")
        assert "/console/login" in s.driver.current_url
        s.open("/console/audit/events")
        assert "/console/login" in s.driver.current_url, "the session is gone"
        assert not s.errors, s.errors
    finally:
        s.quit()


def test_dpo_finds_and_erases(ctx):
    subject = ctx["subjects"][1]
    s = Session()
    try:
        s.sign_in(KEYS["dpo"])
        assert s.driver.current_url.endswith("/console/subjects")
        Select(s.el("by")).select_by_value("external_ref")
        s.el("q").send_keys("browser-1")
        s.click_and_wait(s.el("search"), "search")
        s.click_and_wait(s.driver.find_element(By.CSS_SELECTOR, f'#found a[href="/console/subjects/{subject["subject"]}"]'), "subject")
        page = s.driver.page_source
        assert "Pessoa 1" not in page and "11144477735" not in page and "tok_" not in page, "no value on the page"
        assert s.el("subject-status").text == "active"
        s.shot("console-subject.png")

        erase = s.el("erase")
        assert not erase.is_enabled(), "disabled until the id is typed"
        s.el("reason").send_keys("Art. 18 VI")
        s.el("ticket").send_keys("T-browser")
        s.el("confirm").send_keys("sub_wrong")
        assert not erase.is_enabled()
        s.el("confirm").clear()
        s.el("confirm").send_keys(subject["subject"])
        assert erase.is_enabled(), "enabled once the typed id matches"
        s.click_and_wait(erase, "receipt")
        assert "T-browser" in s.el("receipt").text, s.driver.page_source[-1500:]
        assert s.el("receipt-download").get_attribute("href").endswith(f"/console/subjects/{subject['subject']}/receipt.json")
        s.shot("console-receipt.png")

        status, _, body = api("POST", "/v1/detokenize", KEYS["crm"], {"purpose": "collection-call", "tokens": [subject["tokens"]["phone"]]})
        assert status == 200 and json.loads(body)["results"][0]["denied"]["code"] == "subject_erased", body
        assert not s.errors, s.errors
    finally:
        s.quit()


def test_forged_post_refused(ctx):
    """A post carrying the DPO's session cookie but not its CSRF token (what a forged form would send) changes nothing."""
    target = ctx["subjects"][2]
    s = Session()
    try:
        s.sign_in(KEYS["dpo"])
        cookie = s.driver.get_cookie("cofre_session")
        assert cookie and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", cookie
        form = f"reason=x&ticket=y&confirm={target['subject']}".encode()
        req = urllib.request.Request(f"{URL}/console/subjects/{target['subject']}/erase", data=form, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        req.add_header("Cookie", f"cofre_session={cookie['value']}")
        try:
            urllib.request.urlopen(req)
            raise AssertionError("the forged post was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 403, e.code
        status, _, body = api("POST", "/v1/detokenize", KEYS["crm"], {"purpose": "collection-call", "tokens": [target["tokens"]["phone"]]})
        assert json.loads(body)["results"][0].get("value") == "+5511900000002", body
    finally:
        s.quit()


def main():
    ctx = {"subjects": seed()}
    tests = [test_login_page_headers_and_language, test_service_key_refused, test_auditor_events_charts_verify_logout,
             test_dpo_finds_and_erases, test_forged_post_refused]
    failed = 0
    started = time.time()
    for t in tests:
        try:
            t(ctx)
            print(f"PASS {t.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
    print(f"browser suite: {len(tests)} tests, {len(tests) - failed} passed, {failed} failed in {time.time() - started:.1f} s; screenshots in {SHOTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
