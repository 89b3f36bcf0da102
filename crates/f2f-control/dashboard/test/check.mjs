// Opens the operator dashboard in headless Chromium, waits until it shows at least PEERS
// peers of a swarm and a non-zero offload, saves a screenshot and prints what it saw (JSON).
// Usage: node check.mjs DASHBOARD_URL SCREENSHOT.png PEERS
import { chromium } from "playwright-core";

const [url, screenshot, peers] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(url);
  await page.waitForFunction((want) => {
    const offload = document.querySelector(".swarm .offload");
    const drawn = document.querySelectorAll(".swarm svg.topology circle.peer").length;
    return offload && parseFloat(offload.textContent) > 0 && drawn >= want;
  }, Number(peers), { timeout: 30000 });
  const seen = await page.evaluate(() => ({
    offload: parseFloat(document.querySelector(".swarm .offload").textContent),
    peers: document.querySelectorAll(".swarm svg.topology circle.peer").length,
    edges: document.querySelectorAll(".swarm svg.topology line.edge").length,
    status: document.getElementById("status").textContent,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
