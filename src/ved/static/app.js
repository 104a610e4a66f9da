// The demo page. Served as a file of its own: the Content-Security-Policy allows no inline script.
const examples = ["five", "this is a black five on a white background", "min nine five seven", "max one four",
                  "three plus two", "one plus two plus one plus one", "nine minus five minus four"];
const $ = (id) => document.getElementById(id);
const form = $("form"), captionBox = $("caption"), modelBox = $("model"), countBox = $("n"), seedBox = $("seed");
const status = $("status"), grid = $("grid"), generate = $("generate");
let served = {models: [], settings: {}, default: "", precision: "fp32"};
let downloadUrl = null;

for (const text of examples) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; b.className = "chip";
  b.onclick = () => { captionBox.value = text; form.requestSubmit(); };
  $("examples").appendChild(b);
}

function message(detail) {
  if (Array.isArray(detail)) return detail.map(d => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ");
  return String(detail);
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function setBusy(busy, region, button, line) {
  button.disabled = busy;
  region.setAttribute("aria-busy", String(busy));
  line.classList.toggle("busy", busy);
  if (busy) { line.classList.remove("error", "warning"); line.textContent = "drawing…"; }
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  return [response, await response.json()];
}

function picture(png, alt) {
  const img = document.createElement("img");
  img.src = "data:image/png;base64," + png; img.alt = alt;
  return img;
}

// One slider per sampling setting of the chosen model, at its default or at the value a link gave.
function showSliders(values = {}) {
  const settings = served.settings[modelBox.value] || {};
  const rows = Object.entries(settings).map(([name, s]) => {
    const label = document.createElement("label"), input = document.createElement("input");
    const shown = document.createElement("output");
    const step = s.whole ? 1 : (s.high - s.low > 2 ? 0.05 : 0.001);
    Object.assign(input, {type: "range", id: `setting-${name}`, name, min: s.low, max: s.high, step});
    input.dataset.default = s.default;
    const given = Number.parseFloat(values[name]);
    input.value = Number.isFinite(given) && given >= s.low && given <= s.high ? given : s.default;
    shown.htmlFor = input.id; shown.textContent = input.value;
    input.oninput = () => { shown.textContent = input.value; };
    label.className = "slider"; label.htmlFor = input.id;
    label.append(`${name} (default ${s.default})`, input, shown);
    return label;
  });
  $("sliders").replaceChildren(...rows);
  $("settings").hidden = rows.length === 0;
  $("card").href = `/models/${encodeURIComponent(modelBox.value)}/card`;
}

function chosenSettings() {
  const settings = {};
  for (const input of $("sliders").querySelectorAll("input")) settings[input.name] = Number(input.value);
  return settings;
}

// The URL of a grid: every choice that made it, so that a shared link draws the same pixels again.
function permalink(data, strict) {
  const params = new URLSearchParams({caption: data.caption, n: data.n, seed: data.seed, model: data.model});
  if (!strict) params.set("strict", "0");
  for (const [name, value] of Object.entries(chosenSettings())) params.set(name, value);
  params.set("precision", served.precision);
  return "/?" + params.toString();
}

// The grid as one PNG (28 px a digit or 56 a strip of two, 2 px apart, a row per eight), for the download link.
async function sheet(images) {
  const columns = Math.min(8, images.length), rows = Math.ceil(images.length / columns);
  const canvas = $("sheet"), context = canvas.getContext("2d");
  await Promise.all(images.map(img => img.decode()));
  const wide = images[0].naturalWidth + 2, tall = images[0].naturalHeight + 2;
  canvas.width = columns * wide + 2; canvas.height = rows * tall + 2;
  context.fillStyle = "#282828"; context.fillRect(0, 0, canvas.width, canvas.height);
  images.forEach((img, i) => context.drawImage(img, 2 + (i % columns) * wide, 2 + Math.floor(i / columns) * tall));
  const blob = await new Promise(done => canvas.toBlob(done, "image/png"));
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(blob);
  $("download").href = downloadUrl;
}

// A caption the model's grammar refuses is shown as an error with a button that draws it anyway.
function offerAnyway(text) {
  const anyway = document.createElement("button");
  anyway.type = "button"; anyway.id = "anyway"; anyway.textContent = "Draw it anyway"; anyway.className = "secondary";
  anyway.onclick = () => draw(false);
  status.replaceChildren(text, anyway);
}

async function draw(strict = true) {
  setBusy(true, grid, generate, status);
  const body = {caption: captionBox.value, n: Number(countBox.value), strict, settings: chosenSettings()};
  if (modelBox.value) body.model = modelBox.value;
  const seed = Number.parseInt(seedBox.value, 10);
  if (!Number.isNaN(seed)) body.seed = seed;
  try {
    const [response, data] = await post("/api/generate", body);
    setBusy(false, grid, generate, status);
    if (!response.ok) {
      grid.replaceChildren();
      $("seedline").hidden = true;
      status.className = "error";
      if (data.strict_refusal) offerAnyway(message(data.detail).replace(/; send "strict": false.*$/, ""));
      else status.textContent = message(data.detail);
      return;
    }
    const meaning = data.digit === null ? "drawn outside the grammar" : `${data.digit}`;
    const images = data.images.map((png, i) =>
      picture(png, `"${data.caption}" (${meaning}), sample ${i + 1} of ${data.n}`));
    grid.replaceChildren(...images);
    await Promise.all(images.map(img => img.decode()));
    grid.classList.toggle("strips", images[0].naturalWidth > images[0].naturalHeight);  // numbers past nine
    if (data.warning) { status.className = "warning"; status.textContent = data.warning; }
    else { status.className = ""; status.textContent = `"${data.caption}" means ${data.digit}`; }
    $("seed-shown").textContent = data.seed;
    $("precision").textContent = served.precision;
    $("permalink").href = permalink(data, strict);
    $("seedline").hidden = false;
    await sheet(images);
  } catch (error) {
    setBusy(false, grid, generate, status);
    grid.replaceChildren();
    status.className = "error"; status.textContent = error.message;
  }
}

async function copyLink() {
  const url = new URL($("permalink").getAttribute("href"), location.href).href;
  try {
    await navigator.clipboard.writeText(url);
    $("copy").textContent = "Copied";
  } catch (error) {
    $("copy").textContent = "Select the link to copy it";
  }
  setTimeout(() => { $("copy").textContent = "Copy link"; }, 2000);
}

async function drawStyle() {
  const region = $("style-grid"), line = $("style-status"), button = $("style-button");
  setBusy(true, region, button, line);
  const body = {n: 1, settings: chosenSettings()};
  if (modelBox.value) body.model = modelBox.value;
  try {
    const [response, data] = await post("/api/same-style", body);
    setBusy(false, region, button, line);
    if (!response.ok) { line.className = "error"; line.textContent = message(data.detail); return; }
    region.replaceChildren(...data.images[0].map((png, digit) => {
      const figure = document.createElement("figure"), caption = document.createElement("figcaption");
      caption.textContent = digit;
      figure.append(picture(png, `digit ${digit} in one handwriting`), caption);
      return figure;
    }));
    line.className = ""; line.textContent = `one handwriting (seed ${data.seed}, model ${data.model})`;
  } catch (error) {
    setBusy(false, region, button, line);
    line.className = "error"; line.textContent = error.message;
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  const asked = params.get("model");
  try {
    served = await (await fetch("/api/models")).json();
  } catch (error) { /* the picker stays empty: the server's default model draws */ }
  const model = asked && served.models.includes(asked) ? asked : served.default;
  modelBox.replaceChildren(...served.models.map(name => {
    const option = document.createElement("option");
    option.value = name; option.textContent = `${name} (${served.families[name]})`;
    option.selected = name === model;
    return option;
  }));
  const notes = [];
  if (asked && !served.models.includes(asked)) notes.push(`No model "${asked}" here; drawing with ${model}, the default.`);
  if (params.has("precision") && params.get("precision") !== served.precision) {
    notes.push(`This link was drawn in ${params.get("precision")}; this server draws in ${served.precision}, ` +
               "so pixels may differ by a few grey levels.");
  }
  notice(notes.join(" "));
  showSliders(Object.fromEntries(params));
  if (params.has("caption")) captionBox.value = params.get("caption");
  if (params.has("n")) countBox.value = params.get("n");
  if (params.has("seed")) seedBox.value = params.get("seed");
  draw(params.get("strict") !== "0");  // a first grid on load: a link's, or the example caption's
}

form.addEventListener("submit", (event) => { event.preventDefault(); draw(true); });
modelBox.addEventListener("change", () => showSliders());
$("random").addEventListener("click", () => { seedBox.value = ""; seedBox.focus(); });
$("reset").addEventListener("click", () => showSliders());
$("copy").addEventListener("click", copyLink);
$("style-button").addEventListener("click", drawStyle);
start();
