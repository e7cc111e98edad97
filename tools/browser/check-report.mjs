// Open an sfn report (index.html) in headless Chromium from file:// and check it as a reader
// would meet it: no console error or warning, no failed or outside request, no broken image,
// every expected section present with text, the sections named by --complete complete with a
// table, those named by --figures holding figures that are drawn (non-empty box, many shapes).
// Saves a full-page screenshot.
//
// node check-report.mjs REPORT.html SCREENSHOT.png --complete delta,merge --figures delta [--also findings]
import { chromium } from 'playwright-core';
import path from 'node:path';

const [html, png, ...rest] = process.argv.slice(2);
const flag = (name) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1].split(',') : []; };
const complete = flag('--complete');
const withFigures = flag('--figures');
const sections = ['delta', 'merge', 'freeze', 'destruction', 'evaluations', 'activations', 'metadata', ...flag('--also')];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('request', (r) => { if (!r.url().startsWith('file://')) problems.push(`request outside the page: ${r.url()}`); });
  await page.goto('file://' + path.resolve(html), { waitUntil: 'load' });

  const seen = await page.evaluate(() => ({
    images: [...document.images].map((i) => ({ src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0 })),
    sections: [...document.querySelectorAll('main section')].map((s) => ({
      id: s.id,
      state: s.querySelector('h2 .state')?.textContent ?? '',
      text: s.innerText.trim().length,
      figures: [...s.querySelectorAll('figure svg')].map((svg) => {
        const r = svg.getBoundingClientRect();
        return { w: r.width, h: r.height, shapes: svg.querySelectorAll('rect, path, line, circle, text').length };
      }),
      tables: s.querySelectorAll('table tr').length,
    })),
  }));
  for (const i of seen.images) if (!i.ok) problems.push(`broken image: ${i.src}`);
  for (const id of sections) {
    const s = seen.sections.find((x) => x.id === id);
    if (!s) { problems.push(`section #${id} missing`); continue; }
    if (s.text < 40) problems.push(`section #${id} is empty`);
    console.log(`#${id}: ${s.state || 'present'}, ${s.figures.length} figures, ${s.tables} table rows, ${s.text} characters`);
  }
  for (const id of complete) {
    const s = seen.sections.find((x) => x.id === id);
    if (!s) continue;
    if (s.state !== 'complete') problems.push(`section #${id} is "${s.state}", not complete`);
    if (s.tables < 2) problems.push(`section #${id} has no table rows`);
  }
  for (const id of withFigures) {
    const s = seen.sections.find((x) => x.id === id);
    if (!s) continue;
    if (s.figures.length === 0) problems.push(`section #${id} has no figure`);
    for (const [n, f] of s.figures.entries()) {
      if (f.w < 100 || f.h < 50 || f.shapes < 10) problems.push(`section #${id}, figure ${n + 1} is not drawn (${f.w}×${f.h}, ${f.shapes} shapes)`);
    }
  }
  await page.screenshot({ path: png, fullPage: true });
  console.log(`screenshot: ${png}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(`report check failed (${html}):\n- ` + problems.join('\n- '));
  process.exit(1);
}
console.log('report check passed');
