// The demo page. Served as a file of its own: the Content-Security-Policy allows no inline script.
const examples = ["five", "this is a black five on a white background", "min nine five seven", "max one four",
                  "three plus two", "one plus two plus one plus one", "nine minus five minus four"];
const $ = (id) => document.getElementById(id);
const form = $("form"), captionBox = $("caption"), modelBox = $("model"), countBox = $("n");
const status = $("status"), grid = $("grid"), generate = $("generate");

for (const text of examples) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text;
  b.onclick = () => { captionBox.value = text; form.requestSubmit(); };
  $("examples").appendChild(b);
}

function message(detail) {
  if (Array.isArray(detail)) return detail.map(d => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ");
  return String(detail);
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

// A caption the model's grammar refuses is shown as an error with a button that draws it anyway.
function offerAnyway(text, seed) {
  const anyway = document.createElement("button");
  anyway.type = "button"; anyway.id = "anyway"; anyway.textContent = "Draw it anyway";
  anyway.onclick = () => draw(false, seed);
  status.replaceChildren(text, anyway);
}

// The URL of a grid: caption, n, seed and model, so that a result can be shared and drawn again.
function permalink(data) {
  const params = new URLSearchParams({caption: data.caption, n: data.n, seed: data.seed, model: data.model});
  return "/?" + params.toString();
}

async function draw(strict, seed) {
  setBusy(true, grid, generate, status);
  const body = {caption: captionBox.value, n: Number(countBox.value), strict};
  if (modelBox.value) body.model = modelBox.value;
  if (seed !== undefined && seed !== null) body.seed = seed;
  try {
    const [response, data] = await post("/api/generate", body);
    setBusy(false, grid, generate, status);
    if (!response.ok) {
      grid.replaceChildren();
      $("seedline").hidden = true;
      status.className = "error";
      if (data.strict_refusal) offerAnyway(message(data.detail).replace(/; send "strict": false.*$/, ""), seed);
      else status.textContent = message(data.detail);
      return;
    }
    grid.replaceChildren(...data.images.map((png, i) => picture(png, `sample ${i + 1}`)));
    if (data.warning) { status.className = "warning"; status.textContent = data.warning; }
    else { status.className = ""; status.textContent = `"${data.caption}" means ${data.digit}`; }
    $("seed").textContent = data.seed;
    $("permalink").href = permalink(data);
    $("seedline").hidden = false;
  } catch (error) {
    setBusy(false, grid, generate, status);
    grid.replaceChildren();
    status.className = "error"; status.textContent = error.message;
  }
}

async function drawStyle() {
  const region = $("style-grid"), line = $("style-status"), button = $("style-button");
  setBusy(true, region, button, line);
  const body = {n: 1};
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
  try {
    const response = await fetch("/api/models");
    const data = await response.json();
    modelBox.replaceChildren(...data.models.map(name => {
      const option = document.createElement("option");
      option.value = name; option.textContent = `${name} (${data.families[name]})`;
      option.selected = name === (params.get("model") || data.default);
      return option;
    }));
  } catch (error) { /* the picker stays empty: the server's default model draws */ }
  if (params.has("caption")) {
    captionBox.value = params.get("caption");
    if (params.has("n")) countBox.value = params.get("n");
    const seed = Number.parseInt(params.get("seed"), 10);
    draw(true, Number.isNaN(seed) ? undefined : seed);
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); draw(true); });
$("style-button").addEventListener("click", drawStyle);
start();
