// The demo page. Served as a file of its own: the Content-Security-Policy allows no inline script.
const examples = ["five", "this is a black five on a white background", "min nine five seven", "max one four",
                  "three plus two", "one plus two plus one plus one", "nine minus five minus four"];
const form = document.getElementById("form"), captionBox = document.getElementById("caption");
const status = document.getElementById("status"), grid = document.getElementById("grid");
for (const text of examples) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text;
  b.onclick = () => { captionBox.value = text; form.requestSubmit(); };
  document.getElementById("examples").appendChild(b);
}

function message(detail) {
  if (Array.isArray(detail)) return detail.map(d => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ");
  return String(detail);
}

// A caption the model's grammar refuses is shown as an error with a button that draws it anyway.
function offerAnyway(text) {
  const anyway = document.createElement("button");
  anyway.type = "button"; anyway.id = "anyway"; anyway.textContent = "Draw it anyway";
  anyway.onclick = () => draw(false);
  status.replaceChildren(text, anyway);
}

async function draw(strict) {
  status.className = ""; status.textContent = "drawing…";
  const body = {caption: captionBox.value, n: Number(document.getElementById("n").value), strict};
  try {
    const response = await fetch("/api/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) {
      grid.replaceChildren();
      status.className = "error";
      if (data.strict_refusal) offerAnyway(message(data.detail).replace(/; send "strict": false.*$/, ""));
      else status.textContent = message(data.detail);
      return;
    }
    grid.replaceChildren(...data.images.map((png, i) => {
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + png; img.alt = `sample ${i + 1}`;
      return img;
    }));
    if (data.warning) { status.className = "warning"; status.textContent = data.warning; }
    else status.textContent = `"${data.caption}" means ${data.digit}`;
  } catch (error) {
    grid.replaceChildren();
    status.className = "error"; status.textContent = error.message;
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); draw(true); });
