"""``GET /``: a small page where a person types the features and sees a price."""

from __future__ import annotations

import html

from services.common.features import FEATURES


def index_page() -> str:
    """The HTML page; its script POSTs the form to /predict."""
    fields = "\n".join(
        f"<label>{html.escape(f.name)} <small>{html.escape(f.description)}, {html.escape(f.unit)}</small>"
        f'<input name="{f.name}" type="number" step="any" min="{f.minimum:g}" max="{f.maximum:g}" '
        f'value="{f.example:g}" required></label>'
        for f in FEATURES
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>California house price</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; }}
label {{ display: block; margin: .6rem 0; }} small {{ color: #666; }}
input {{ display: block; width: 100%; padding: .3rem; }} button {{ margin-top: 1rem; padding: .5rem 1rem; }}
#price {{ font-size: 1.6rem; margin-top: 1rem; }} #error {{ color: #b00; }}
</style></head>
<body>
<h1>California house price</h1>
<p>Type a block group's figures; the served model predicts its median house value.
<a href="/docs">API</a> · <a href="/model">model</a></p>
<form id="house">
{fields}
<button type="submit">Predict</button>
</form>
<div id="price"></div><div id="error"></div>
<script>
document.getElementById("house").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const row = {{}};
  for (const [name, value] of new FormData(event.target)) row[name] = Number(value);
  const price = document.getElementById("price"), error = document.getElementById("error");
  price.textContent = ""; error.textContent = "";
  const answer = await fetch("/predict", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                                           body: JSON.stringify(row)}});
  const body = await answer.json();
  if (answer.ok) {{
    price.textContent = "$" + Math.round(body.predicted_price_usd).toLocaleString("en-US")
      + " (model v" + body.model_version + ")";
  }} else {{
    error.textContent = body.detail;
  }}
}});
</script>
</body></html>
"""
