// Signs in to Portcullis in Debian's Chromium, driven by Playwright, the
// way a person would: open a protected page, get sent to the IdP, fill its
// real login form, land on the portal. Playwright gives every launch a
// new, empty profile. The Go end-to-end test runs it and
// checks what it reports on stdout (one JSON object).
//
// Environment:
//   GATEWAY     the gateway's base URL (http://127.0.0.1:PORT)
//   LOGIN       the user's login at the IdP, PASSWORD the password
//   ARTIFACTS   a folder for screenshots
//   MINT=1      also create a token in the portal and sign out
//   CHROMIUM    the browser (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const env = process.env;
const gateway = env.GATEWAY;
const report = { steps: [] };
const step = (name, extra = {}) => report.steps.push({ name, ...extra });

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20000);

  // A protected page: the gateway sends the browser to sign in.
  await page.goto(gateway + '/portal/');
  step('redirected', { url: page.url() });

  // The IdP's own login form.
  await page.waitForSelector('input[name="login"]');
  step('login form', { url: page.url(), title: await page.title() });
  await page.fill('input[name="login"]', env.LOGIN);
  await page.fill('input[name="password"]', env.PASSWORD);
  await Promise.all([
    page.waitForURL(u => u.toString().startsWith(gateway + '/portal/')),
    page.click('button[type="submit"]'),
  ]);
  await page.waitForSelector('main h1');
  report.home = {
    url: page.url(),
    title: await page.textContent('main h1'),
    text: await page.textContent('main'),
  };
  await page.screenshot({ path: join(env.ARTIFACTS, `portal-home-${env.LOGIN}.png`), fullPage: true });
  step('portal');

  if (env.MINT === '1') {
    // Long enough for the refresh_before the test configured: this
    // reload renews the ID token with the refresh token.
    await page.waitForTimeout(2500);
    await page.reload();
    await page.waitForSelector('main h1');
    report.reloaded = { title: await page.textContent('main h1'), text: await page.textContent('main') };
    step('reloaded');

    // The API answers the session cookie too: the model list, as the
    // browser shows it when opened.
    await page.goto(gateway + '/v1/models');
    report.models = JSON.parse(await page.textContent('body')).data.map(m => m.id);
    await page.goto(gateway + '/portal/');

    await page.check('input[name="lifetime"][value="1h0m0s"]');
    await Promise.all([page.waitForURL(gateway + '/portal/tokens'), page.click('form.mint button[type="submit"]')]);
    report.token = await page.inputValue('#token-value');
    report.tokenPage = await page.textContent('main');
    await page.screenshot({ path: join(env.ARTIFACTS, `portal-token-${env.LOGIN}.png`), fullPage: true });
    step('token');

    await page.goto(gateway + '/portal/');
    await Promise.all([page.waitForLoadState('load'), page.click('form.signout button')]);
    await page.waitForLoadState('networkidle');
    report.signedOut = { url: page.url(), text: await page.textContent('body') };
    step('signed out');

    // With the session gone, the portal sends the browser to sign in again.
    await page.goto(gateway + '/portal/');
    await page.waitForLoadState('load');
    report.afterSignOut = { url: page.url(), hasLoginForm: (await page.$('input[name="login"]')) !== null };
    step('after sign-out');
  }
} catch (err) {
  report.error = String(err && err.stack || err);
  if (page) {
    report.failedAt = { url: page.url(), text: await page.textContent('body').catch(() => '') };
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(report.error ? 1 : 0);
