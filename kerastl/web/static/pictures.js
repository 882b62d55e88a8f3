"use strict";
// What kerastl's local pages (the demo, teach) share: a drawing pad, pictures dropped or chosen,
// sending a picture to the server, top classes drawn as bars, and "not sure". Inlined by kerastl/web/page.py.
const kerastl = (() => {
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A canvas to draw on with the mouse, a pen or a finger; `onStroke()` after each finished stroke.
  function drawingPad(canvas, onStroke, lineWidth = 22) {
    const ctx = canvas.getContext("2d");
    let drawing = false, last = null;
    const point = (event) => {
      const r = canvas.getBoundingClientRect();
      return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
    };
    const stroke = (from, to) => {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = lineWidth;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(from[0], from[1]);
      ctx.lineTo(to[0], to[1]);
      ctx.stroke();
    };
    canvas.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = true;
      last = point(event);
      stroke(last, last);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      const next = point(event);
      stroke(last, next);
      last = next;
    });
    const end = () => {
      if (!drawing) return;
      drawing = false;
      if (onStroke) onStroke();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    const pad = {
      canvas,
      clear() {
        ctx.fillStyle = "#fff";
        ctx.fillRect(0, 0, canvas.width, canvas.height);
      },
      // a picture (an <img>, <video> or bitmap) drawn whole in the middle of the pad
      show(image, width, height) {
        pad.clear();
        const scale = Math.min(canvas.width / width, canvas.height / height);
        const w = width * scale, h = height * scale;
        ctx.drawImage(image, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
      },
      showFile(file) {
        const url = URL.createObjectURL(file);
        const image = new Image();
        image.onload = () => { pad.show(image, image.width, image.height); URL.revokeObjectURL(url); };
        image.onerror = () => URL.revokeObjectURL(url);
        image.src = url;
      },
      blob() { return new Promise((resolve) => canvas.toBlob(resolve, "image/png")); },
    };
    return pad;
  }

  // Files dropped on `zone` or chosen with the file `input`: `onFiles([File, ...])`.
  function acceptFiles(zone, input, onFiles) {
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const files = [...event.dataTransfer.files];
      if (files.length) onFiles(files);
    });
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";  // the same file chosen again is a new choice
      if (files.length) onFiles(files);
    });
  }

  // One request to this server; its JSON answer, or an Error with the server's message.
  async function request(url, options = {}) {
    const response = await fetch(url, options);
    let answer;
    try { answer = await response.json(); } catch (error) { answer = {}; }
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  }

  function postPicture(url, blob) {
    return request(url, { method: "POST", body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" } });
  }

  // A model's top classes as rows of label, bar and percentage (each row's data-label and data-probability set).
  function showTop(list, predictions) {
    list.replaceChildren(...predictions.map((p) => {
      const item = element("li");
      item.dataset.label = p.label;
      item.dataset.probability = p.probability;
      const bar = element("span", "bar");
      const fill = element("span");
      fill.style.width = `${(100 * p.probability).toFixed(1)}%`;
      bar.append(fill);
      item.append(element("span", "label", p.label), bar, element("span", "pct", `${(100 * p.probability).toFixed(1)} %`));
      return item;
    }));
  }

  // "not sure" when a model abstained (its top score below its threshold), the top guess dimmed
  // by the shared style; `holder` is the element around the top classes.
  function showVerdict(holder, verdict, result) {
    holder.dataset.abstained = Boolean(result.abstained);
    verdict.textContent = result.abstained
      ? `not sure: its top score is below its threshold of ${(100 * result.threshold).toFixed(1)} %` : "";
  }

  return { element, drawingPad, acceptFiles, request, postPicture, showTop, showVerdict };
})();
