// kmseg's web page: plain JavaScript, no build step, talks to the JSON API of `kmseg serve`.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    drop: $("dropzone"), input: $("file-input"), fileName: $("file-name"), maxUpload: $("max-upload"),
    planeField: $("plane-field"), planeLabel: $("plane-label"), plane: $("plane"), planeNote: $("plane-note"),
    sample: $("sample"), sampleName: $("sample-name"), k: $("k"), kValue: $("k-value"), space: $("color-space"), seed: $("seed"),
    status: $("status"), notes: $("notes"), error: $("error"), empty: $("empty"), result: $("result"),
    segmented: $("segmented"), masked: $("masked"), maskedCaption: $("masked-caption"),
    palette: $("palette"), paletteValuesHint: $("palette-values-hint"), elbow: $("elbow"), elbowNote: $("elbow-note"),
    downloads: $("downloads"), dlSegmented: $("dl-segmented"), dlLabels: $("dl-labels"),
    dlPalette: $("dl-palette"), dlMasked: $("dl-masked"), dlMaskedHint: $("dl-masked-hint"),
    dlSegmentedPng: $("dl-segmented-png"), dlMaskedPng: $("dl-masked-png"),
    dlZip: $("dl-clusters-zip"), dlClusters: $("dl-clusters"),
    dlPaletteFiles: { gpl: $("dl-palette-gpl"), ase: $("dl-palette-ase"), css: $("dl-palette-css"), png: $("dl-palette-png") },
  };

  const state = {
    file: null,          // the File, kept to re-send if the server forgot the upload (or has not decoded a plane of it)
    planes: null,        // the current file's planes (a TIFF stack) or frames (an animation): { n, kind }
    waiting: null,       // a File chosen but not shown yet: the seed was not valid, or the colour space did not fit it
    uploadId: null,
    result: null,        // the last /api/segment response shown
    disabled: new Set(), // clusters hidden in the masked image
    seq: 0,              // newest /api/segment request; older answers are dropped
    controller: null,
    elbowKey: null,
    elbowSeq: 0,
    curve: null,         // the elbow curve shown, redrawn when its box changes width
    maxUpload: 50 * 1024 * 1024,
  };

  // ------------------------------------------------------------------ messages

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = "";
  }

  function setStatus(text, busy = false) {
    el.status.textContent = text;
    el.status.classList.toggle("busy", busy);
  }

  async function errorText(resp) {
    return (await errorBody(resp)).message;
  }

  // An error answer: its message, and the facts some errors carry beside it (a stack's `planes`).
  async function errorBody(resp) {
    try {
      const body = await resp.json();
      const message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
      return { ...body, message };
    } catch {
      return { message: `the server answered ${resp.status} ${resp.statusText}` };
    }
  }

  // The server does not answer at all (stopped, or the network is down).
  const unreachable = (err) =>
    `Cannot reach the kmseg server${err ? ` (${err.message})` : ""}; is it still running? Start it with: kmseg serve`;

  const mb = (bytes) => `${+(bytes / 1048576).toFixed(1)} MB`;
  // A value as the page writes it: whole numbers with thousands separators (-1,000; 51,400),
  // others to 4 significant digits (0.4725), or to one decimal from 1,000 up (12,345.7).
  const whole = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const fourDigits = new Intl.NumberFormat("en", { maximumSignificantDigits: 4 });
  const oneDecimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const num = (v) => (Number.isInteger(v) ? whole : Math.abs(v) >= 1000 ? oneDecimal : fourDigits).format(v);

  // A large value with an SI prefix, to `digits` significant digits: 2.51 G, 350 M, 12.5 k;
  // under 1,000 as `num` writes it. The elbow curve's axis, points and tooltips say inertias so.
  const PREFIXES = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  function si(v, digits = 3) {
    for (const [size, prefix] of PREFIXES) {
      // rounded first, so that 999,999 is "1 M" and not "1,000 k"
      const scaled = Number((Math.abs(v) / size).toPrecision(digits));
      if (scaled >= 1) return `${Math.sign(v) < 0 ? "-" : ""}${scaled} ${prefix}`;
    }
    return Number.isInteger(v) ? whole.format(v) : new Intl.NumberFormat("en", { maximumSignificantDigits: digits }).format(v);
  }

  // Ticks from 0 to at least `max`: a step of 1, 2, 2.5 or 5 times a power of ten, about 4 of them.
  function ticks(max) {
    if (!(max > 0)) return [0, 1];
    const raw = max / 4, power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw * (1 - 1e-9)) * power;
    const n = Math.ceil(max / step - 1e-9);
    return Array.from({ length: n + 1 }, (_, i) => Number((i * step).toPrecision(12)));
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // ------------------------------------------------------------------ choosing an image

  function useFile(file) {
    if (!file) return;
    clearError();
    if (file.size > state.maxUpload) {
      showError(`${file.name} is ${mb(file.size)}, more than the limit of ${mb(state.maxUpload)}; choose a smaller image.`);
      return;
    }
    segment(true, file); // the file becomes the current one once it has been segmented
  }

  el.input.addEventListener("change", () => {
    useFile(el.input.files[0]);
    el.input.value = ""; // choosing the same file again fires "change" again
  });
  el.drop.addEventListener("click", (ev) => {
    if (ev.target !== el.input && !ev.target.closest("label")) el.input.click();
  });
  el.drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); el.input.click(); }
  });
  for (const name of ["dragenter", "dragover"]) {
    el.drop.addEventListener(name, (ev) => { ev.preventDefault(); el.drop.classList.add("dragging"); });
  }
  for (const name of ["dragleave", "drop"]) {
    el.drop.addEventListener(name, () => el.drop.classList.remove("dragging"));
  }
  el.drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const files = ev.dataTransfer && ev.dataTransfer.files;
    if (!files || files.length === 0) { showError("Nothing was dropped; drop an image file."); return; }
    useFile(files[0]);
  });
  // Dropping a file anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());

  // The photos bundled with kmseg (kmseg.data.NAMES), which the server serves at /api/sample/NAME.
  el.sample.addEventListener("click", async () => {
    const name = el.sampleName.value;
    clearError();
    setStatus(`Fetching the sample photo ${name}…`, true);
    try {
      const resp = await fetch(`/api/sample/${encodeURIComponent(name)}`);
      if (!resp.ok) throw new Error(await errorText(resp));
      const blob = await resp.blob();
      useFile(new File([blob], name, { type: blob.type || "image/png" }));
    } catch (err) {
      setStatus("");
      // fetch() throws a TypeError when no server answers; else the server's own words
      showError(err instanceof TypeError ? unreachable(err) : `Cannot fetch the sample photo ${name}: ${err.message}`);
    }
  });

  // ------------------------------------------------------------------ segmenting

  let debounce = null;
  el.k.addEventListener("input", () => {
    el.kValue.textContent = el.k.value;
    clearTimeout(debounce);
    debounce = setTimeout(() => segment(false), 150);
  });
  el.k.addEventListener("change", () => { clearTimeout(debounce); segment(false); });
  el.space.addEventListener("change", () => segment(false));
  el.seed.addEventListener("change", () => segment(false));
  // The plane (or frame) picker: typed digits wait a moment for the next; arrows and Enter go at once.
  el.plane.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => segment(false), 300);
  });
  el.plane.addEventListener("change", () => { clearTimeout(debounce); segment(false); });

  // The seed as sent, or null when the box holds what the API refuses. The box's min, max and
  // step are the API's rule (a whole number from 0 to 2^32 - 1); an empty box is its placeholder, 0.
  function seedValue() {
    if (el.seed.value === "" && !el.seed.validity.badInput) return "0";
    return el.seed.checkValidity() ? String(el.seed.valueAsNumber) : null;
  }

  // The plane to send for the file shown: a stack's always (the API needs one), an animation's
  // frame when it is not the first (which the API reads without one, so that its outputs are
  // named as `kmseg segment` names them without --plane); null when none is sent; undefined when
  // the picker holds what is not one of the file's planes.
  function planeValue() {
    const planes = state.planes;
    if (!planes || planes.n < 2) return null;
    if (el.plane.value === "" || !el.plane.checkValidity()) return undefined;
    const plane = el.plane.valueAsNumber;
    return planes.kind === "frame" && plane === 0 ? null : plane;
  }

  // The API's words for a colour space that does not fit the image ("color_space='hsv' needs an
  // RGB image ...: use color_space='rgb'") in the page's, whose control is "Colour space".
  const spaceName = (value) => {
    const option = [...el.space.options].find((o) => o.value === value);
    return option ? option.textContent : value;
  };
  const spaceWords = (message) => message
    .replace(/use color_space='rgb'/g, `choose ${spaceName("rgb")} as the colour space`)
    .replace(/color_space='(\w+)'/g, (_, value) => `the colour space ${spaceName(value)}`);

  // `newPlane`: the plane to read of a new file (null: none, as for any file first sent).
  async function segment(withFile, newFile = null, newPlane = null) {
    clearTimeout(debounce);
    if (!newFile && state.waiting) { newFile = state.waiting; withFile = true; } // the file chosen last, not shown yet
    const seed = seedValue();
    const plane = newFile ? newPlane : planeValue();
    if (seed === null || plane === undefined) {
      // Nothing is sent: an answer still on its way would show a result for another seed or plane.
      state.seq++;
      if (state.controller) state.controller.abort();
      if (newFile) state.waiting = newFile; // segmented once the seed is fixed
      setStatus("");
      if (seed === null) {
        const typed = el.seed.value === "" ? "is not a number" : `${el.seed.value} is not valid`;
        showError(`Seed ${typed}; pass a whole number from ${el.seed.min} to ${el.seed.max}.`);
      } else {
        const { n, kind } = state.planes;
        const typed = el.plane.value === "" ? "is empty" : `${el.plane.value} is not valid`;
        showError(`${kind === "frame" ? "Frame" : "Plane"} ${typed}; this file has ${plural(n, kind)}: ` +
          `pick a whole number from 0 to ${n - 1}.`);
      }
      return;
    }
    const file = newFile || state.file;
    if (!file) return;
    state.waiting = null;
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;

    const form = new FormData();
    const sendFile = withFile || !state.uploadId;
    if (sendFile) form.append("file", file, file.name);
    else form.append("upload_id", state.uploadId);
    if (plane !== null) form.append("plane", String(plane));
    form.append("k", el.k.value);
    form.append("color_space", el.space.value);
    form.append("seed", seed);

    const kind = !newFile && state.planes ? state.planes.kind : "plane"; // (a new file is sent with a plane when it is a stack)
    const which = plane === null ? "" : ` ${kind} ${plane}`;
    setStatus(sendFile ? `Uploading and segmenting${which} into ${el.k.value} clusters…`
      : `Segmenting${which} into ${el.k.value} clusters…`, true);
    let data;
    try {
      const resp = await fetch("/api/segment", { method: "POST", body: form, signal: controller.signal });
      if (seq !== state.seq) return;
      // The server forgot the upload, or has not decoded this plane of it (it keeps decoded planes, not files): send it again.
      if (resp.status === 404 && !sendFile) { segment(true); return; }
      if (!resp.ok) {
        const body = await errorBody(resp);
        const message = body.message;
        if (seq !== state.seq) return;
        // A stack of planes sent without one: segment its first plane at once, and offer the others.
        if (resp.status === 422 && plane === null && body.plane_kind === "plane" && body.planes > 1) {
          segment(true, file, 0);
          return;
        }
        setStatus("");
        // A new file the colour space does not fit waits for another colour space (or K, or
        // seed), rather than that choice segmenting the image shown before it.
        const spaceRefused = resp.status === 422 && form.get("color_space") !== "rgb" && /color_space='/.test(message);
        if (spaceRefused && newFile) state.waiting = newFile;
        showError(spaceRefused ? spaceWords(message) : message);
        return;
      }
      data = await resp.json();
    } catch (err) {
      if (err.name === "AbortError" || seq !== state.seq) return; // a newer request replaced this one
      setStatus("");
      showError(unreachable(err));
      return;
    }
    if (seq !== state.seq) return;
    clearError();
    state.file = file;
    el.fileName.textContent = file.name;
    state.uploadId = data.upload_id;
    state.result = data;
    state.disabled.clear();
    showPlanes(data, Boolean(newFile));
    render(data);
    const key = `${data.upload_id}|${data.plane}|${data.color_space}|${data.seed}`;
    if (key !== state.elbowKey) { state.elbowKey = key; elbow(data); } else { markElbow(data.k); }
  }

  // ------------------------------------------------------------------ showing a result

  // The picker of a file with several planes (a TIFF stack) or frames (an animation), beside the
  // file; hidden for a single image. A new file's picker starts at the plane it was shown with.
  function showPlanes(data, isNew) {
    const n = data.planes || 1;
    state.planes = { n, kind: data.plane_kind === "frame" ? "frame" : "plane" };
    el.planeField.hidden = n < 2;
    if (n < 2) return;
    const frames = state.planes.kind === "frame";
    el.planeLabel.textContent = frames ? "Frame" : "Plane";
    el.plane.max = String(n - 1);
    if (isNew) el.plane.value = String(data.plane ?? 0);
    el.planeNote.textContent = frames
      ? `This file is an animation of ${n} frames; pick one (0 to ${n - 1}).`
      : `This file is a stack of ${n} planes; pick one (0 to ${n - 1}).`;
  }

  // The stem of a result's downloads, as the server names them: NAME-kK, or NAME-planeN-kK for a
  // plane picked (`kmseg segment --plane N` names its outputs NAME-planeN-...).
  const stemOf = (data) => `${data.name.replace(/\.[^.]*$/, "") || "image"}` +
    `${data.plane === null || data.plane === undefined ? "" : `-plane${data.plane}`}-k${data.k}`;

  function render(data) {
    el.empty.hidden = true;
    el.result.hidden = false;
    el.downloads.hidden = false;
    el.segmented.src = preview(data.urls.segmented, el.segmented);
    updateMasked();

    const fewer = data.k < data.k_requested ? ` (the image has only ${plural(data.k, "colour")})` : "";
    const how = data.cached ? "image already decoded" : "image decoded";
    const where = data.planes > 1 ? ` · ${data.plane_kind} ${data.plane ?? 0} of ${data.planes}` : "";
    setStatus(`K = ${data.k}${fewer}${where} · ${data.width} × ${data.height} px · ${plural(data.n_iter, "iteration")} · ` +
      `${data.seconds.toFixed(2)} s (${how})`);
    // The server's notes: a TIFF of several images (the first is shown), fewer colours than K.
    const notes = data.warnings || [];
    el.notes.replaceChildren(...notes.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
    el.notes.hidden = notes.length === 0;

    // The hex colour is all there is to say of an 8-bit grey or RGB centre. Of any other image
    // it is how the previews show the centre (some of its bands, on its display range), so each
    // swatch also lists the centre's values, every band of it, as the segmented TIFF holds them.
    const withValues = showsValues(data);
    el.paletteValuesHint.hidden = !withValues;
    el.paletteValuesHint.textContent = withValues ? valuesHint(data) : "";
    el.palette.replaceChildren(...data.palette.map((p) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "swatch";
      button.dataset.index = String(p.index);
      button.dataset.testid = "swatch";
      button.setAttribute("aria-pressed", "false");
      const share = `${(100 * p.fraction).toFixed(1)}% of the pixels`;
      const colour = withValues ? `${namedValues(p.values)}, shown as ${p.hex}` : p.hex;
      button.title = `Cluster ${p.index}: ${colour}, ${share}. Click to hide or show it.`;
      // Its name for screen readers (its text alone reads "#916a4d30.9%"); pressed = hidden.
      button.setAttribute("aria-label", `Hide cluster ${p.index} (${colour}, ${share})`);
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.backgroundColor = p.hex;
      const hex = document.createElement("span");
      hex.className = "hex";
      hex.textContent = p.hex;
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${(100 * p.fraction).toFixed(1)}%`;
      const text = document.createElement("span");
      text.className = "swatch-text";
      text.append(hex, " ", pct);
      if (withValues) {
        const values = document.createElement("span");
        values.className = "values";
        values.dataset.testid = "swatch-values";
        values.textContent = p.values.map(num).join(" · ");
        text.append(values);
      }
      button.append(chip, text);
      button.addEventListener("click", () => toggle(p.index, button));
      li.append(button);
      return li;
    }));

    const stem = stemOf(data);
    // An image whose values the page's 8-bit PNG cannot hold (uint16, int16, float, ...) is
    // downloaded as a TIFF in its own dtype; the 8-bit PNG is offered after it, as a preview.
    const tif = fullDepth(data);
    el.dlSegmented.textContent = `Segmented image (${format(data)})`;
    link(el.dlSegmented, tif ? data.urls.segmented_tif : data.urls.segmented, `${stem}-segmented${suffix(data)}`);
    link(el.dlSegmentedPng, data.urls.segmented, `${stem}-segmented.png`);
    el.dlSegmentedPng.parentElement.hidden = !tif;
    el.dlMasked.textContent = `Masked image (${format(data)})`;
    link(el.dlLabels, data.urls.labels, `${stem}-labels.png`);
    link(el.dlPalette, data.urls.palette, `${stem}-palette.json`);
    // The palette for designers' tools: GIMP palette, Adobe Swatch Exchange, CSS, a swatch strip.
    for (const [suffix, a] of Object.entries(el.dlPaletteFiles)) {
      link(a, data.urls[`palette_${suffix}`], `${stem}-palette.${suffix}`);
    }
    link(el.dlZip, data.urls.clusters_zip, `${stem}-clusters.zip`);
    // The cut-outs in the palette's order (largest share first); urls.clusters[i] is cluster i's.
    el.dlClusters.replaceChildren(...data.palette.map((p) => {
      const li = document.createElement("li");
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.backgroundColor = p.hex;
      const a = document.createElement("a");
      a.dataset.testid = "dl-cluster";
      link(a, data.urls.clusters[p.index], `${stem}-cluster${p.index}.png`);
      a.textContent = `Cluster ${p.index} (${p.hex})`;
      li.append(chip, a);
      return li;
    }));
  }

  // The page shows each image as wide as its frame, so it asks for a preview that wide in
  // device pixels (rounded up to a multiple of 256, so that one size serves many windows):
  // a 12 MP photo's masked image then encodes in a tenth of the time. Downloads stay full size.
  function preview(url, img) {
    return `${url}${url.includes("?") ? "&" : "?"}width=${previewWidth(img)}`;
  }

  function previewWidth(img) {
    const px = Math.ceil((img.parentElement.clientWidth || 512) * (window.devicePixelRatio || 1));
    return Math.max(256, Math.ceil(px / 256) * 256);
  }

  // A frame made wider after its image was shown (a wider window, a zoom) asks again for a
  // preview that wide, so that the image stays sharp; a narrower frame keeps the one it has.
  // Nothing is asked once the preview holds the whole image.
  function sharpen(img) {
    if (!state.result || !img.getAttribute("src")) return;
    const have = Number(new URL(img.src).searchParams.get("width"));
    if (!have || (img.complete && img.naturalWidth > 0 && img.naturalWidth < have)) return;
    if (previewWidth(img) > have) img.src = preview(img.src.replace(/[?&]width=\d+$/, ""), img);
  }

  // An image narrower than its frame (a small image, an icon) is enlarged pixel by pixel: smoothed,
  // its clusters' borders would show colours that no cluster has. A larger one is reduced smoothly.
  function crisp(img) {
    const enlarged = img.naturalWidth > 0 && img.naturalWidth < img.clientWidth * (window.devicePixelRatio || 1);
    img.classList.toggle("enlarged", enlarged);
  }
  for (const img of [el.segmented, el.masked]) img.addEventListener("load", () => crisp(img));

  let resizeTimer = 0;
  const frames = new ResizeObserver(() => {
    crisp(el.segmented);
    crisp(el.masked);
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { sharpen(el.segmented); sharpen(el.masked); }, 150);
  });
  frames.observe(el.segmented.parentElement);
  frames.observe(el.masked.parentElement);

  // An 8-bit grey or RGB image: its palette's hex colours are its centres' values.
  const greyOrRgb8 = (data) => data.dtype === "uint8" && (data.bands === 1 || data.bands === 3);
  const showsValues = (data) => !greyOrRgb8(data);

  // "band 1 120, band 2 40", or "value -300" for one band.
  const namedValues = (values) => (values.length === 1
    ? `value ${num(values[0])}`
    : values.map((v, i) => `band ${i + 1} ${num(v)}`).join(", "));

  function valuesHint(data) {
    const shown = data.bands === 1 ? "it in grey"
      : data.bands === 2 ? "band 1 in grey" : "bands 1 to 3 as red, green and blue";
    const what = data.bands === 1 ? `its centre's value (${data.dtype})`
      : `its centre's values in the image's ${data.bands} bands (${data.dtype}): ` +
        Array.from({ length: data.bands }, (_, i) => `band ${i + 1}`).join(" · ");
    return `Each colour lists ${what}, as the segmented TIFF holds them; its swatch shows ${shown}.`;
  }

  // The page's PNGs are 8-bit grey or RGB: every other image (another dtype, 2 bands, 4 bands
  // without alpha, more) is downloaded as a TIFF that keeps its dtype and every band (`.tif` is
  // also what `kmseg segment` writes when a PNG cannot hold the values).
  const fullDepth = (data) => data.output_suffix === ".tif" || !greyOrRgb8(data);
  const suffix = (data) => (fullDepth(data) ? ".tif" : ".png");
  const format = (data) => (fullDepth(data) ? `TIFF, ${data.dtype}` : "PNG");

  function link(a, url, filename) {
    a.href = url;
    a.download = filename;
  }

  function toggle(index, button) {
    if (state.disabled.has(index)) state.disabled.delete(index); else state.disabled.add(index);
    button.setAttribute("aria-pressed", String(state.disabled.has(index)));
    updateMasked();
  }

  function updateMasked() {
    const data = state.result;
    if (!data) return;
    const base = data.urls.masked.split("?")[0];
    const hidden = [...state.disabled].sort((a, b) => a - b);
    const url = hidden.length ? `${base}?disable=${hidden.join(",")}` : base;
    el.masked.src = preview(url, el.masked);
    el.masked.dataset.disable = hidden.join(",");
    el.maskedCaption.textContent = hidden.length
      ? `Hidden: cluster${hidden.length > 1 ? "s" : ""} ${hidden.join(", ")}`
      : "Original";
    // With nothing hidden the masked image is the original: no link, and a hint says what to do.
    el.dlMaskedHint.hidden = hidden.length > 0;
    const tif = fullDepth(data);
    el.dlMaskedPng.parentElement.hidden = !(tif && hidden.length);
    if (hidden.length) {
      const name = `${stemOf(data)}-masked-${hidden.join("-")}`;
      const query = `?disable=${hidden.join(",")}`;
      link(el.dlMasked, tif ? data.urls.masked_tif.split("?")[0] + query : url, `${name}${suffix(data)}`);
      link(el.dlMaskedPng, url, `${name}.png`);
      el.dlMasked.removeAttribute("aria-disabled");
    } else {
      el.dlMasked.removeAttribute("href");
      el.dlMaskedPng.removeAttribute("href");
      el.dlMasked.setAttribute("aria-disabled", "true");
    }
  }

  // An image of the result that does not load: the server has stopped, or it no longer has
  // the result (it keeps results for a while only, and forgets them when it restarts).
  async function imageFailed(what) {
    const result = state.result;
    if (!result) return;
    let up = false;
    try {
      up = (await fetch("/api/health", { cache: "no-store" })).ok;
    } catch {
      up = false;
    }
    if (result !== state.result) return; // a newer result replaced it
    showError(up
      ? `The ${what} could not be loaded: the server no longer has this result (it keeps results for a while, and forgets them when restarted); move K or choose the image again.`
      : unreachable());
  }
  el.segmented.addEventListener("error", () => imageFailed("segmented image"));
  el.masked.addEventListener("error", () => imageFailed("masked image"));

  // ------------------------------------------------------------------ elbow curve

  async function elbow(data) {
    const seq = ++state.elbowSeq;
    el.elbow.replaceChildren();
    el.elbowNote.textContent = "Computing the elbow curve…";
    const form = new FormData();
    form.append("upload_id", data.upload_id);
    if (data.plane !== null && data.plane !== undefined) form.append("plane", String(data.plane));
    form.append("color_space", data.color_space);
    form.append("seed", String(data.seed));
    form.append("k_max", "10");
    let curve;
    try {
      const resp = await fetch("/api/elbow", { method: "POST", body: form });
      if (seq !== state.elbowSeq) return;
      if (!resp.ok) {
        const message = await errorText(resp);
        if (seq !== state.elbowSeq) return;
        el.elbowNote.textContent = `No elbow curve: ${message}`;
        if (resp.status !== 501) showError(message);
        state.elbowKey = null;
        return;
      }
      curve = await resp.json();
    } catch (err) {
      if (seq === state.elbowSeq) el.elbowNote.textContent = `The elbow curve failed: ${err.message}`;
      return;
    }
    if (seq !== state.elbowSeq) return;
    drawElbow(curve);
    markElbow(state.result ? state.result.k : null);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The curve is drawn in CSS pixels, as wide as its box (at least 240): text, points and
  // their targets keep their size on a narrow window (a phone), where a fixed 480-wide
  // drawing scaled down to 11 px text at 7 px and points to 7 px targets.
  function drawElbow(curve) {
    state.curve = curve;
    const W = elbowWidth(), H = 220, left = 58, right = 16, top = 14, bottom = 34;
    el.elbow.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const ks = curve.ks, ys = curve.inertias;
    const kmin = Math.min(...ks), kmax = Math.max(...ks);
    // The inertia axis runs from 0 to a round tick at or above the largest inertia; its labels
    // are short (2.5 G, 500 M), as the points' names and tooltips say inertias.
    const yticks = ticks(Math.max(...ys));
    const ymax = yticks[yticks.length - 1];
    const x = (k) => left + (kmax === kmin ? 0.5 : (k - kmin) / (kmax - kmin)) * (W - left - right);
    const y = (v) => top + (1 - v / ymax) * (H - top - bottom);
    const nodes = [];
    for (const v of yticks) {
      nodes.push(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      nodes.push(svg("text", { class: "ytick", x: left - 6, y: y(v) + 4, "text-anchor": "end", "data-value": v }, si(v)));
    }
    nodes.push(svg("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));
    nodes.push(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom }));
    for (const k of ks) nodes.push(svg("text", { x: x(k), y: H - bottom + 16, "text-anchor": "middle" }, k));
    nodes.push(svg("text", { x: (left + W - right) / 2, y: H - 3, "text-anchor": "middle" }, "K"));
    nodes.push(svg("polyline", { class: "curve", points: ks.map((k, i) => `${x(k)},${y(ys[i])}`).join(" ") }));
    if (curve.knee !== null && curve.knee !== undefined) {
      const i = ks.indexOf(curve.knee);
      if (i >= 0) {
        nodes.push(svg("circle", { class: "knee", cx: x(curve.knee), cy: y(ys[i]), r: 10, "data-testid": "elbow-knee", "data-k": curve.knee }));
        // beside the knee, on the side with room: a knee at K = 9 wrote past the drawing's right edge
        const leftward = x(curve.knee) > (left + W - right) / 2;
        nodes.push(svg("text", { class: "knee-label", x: x(curve.knee) + (leftward ? -12 : 12), y: y(ys[i]) - 10,
          "text-anchor": leftward ? "end" : "start", "data-testid": "elbow-knee-label" }, `knee: K = ${curve.knee}`));
      }
    }
    ks.forEach((k, i) => {
      // A point is a 24 px target (an invisible disc) around its 10 px dot.
      const pt = svg("g", { class: "pt", "data-k": k, tabindex: 0, role: "button",
        "aria-label": `Use K = ${k} (inertia ${si(ys[i])})` });
      pt.append(svg("circle", { class: "hit", cx: x(k), cy: y(ys[i]), r: 12 }),
        svg("circle", { class: "dot", cx: x(k), cy: y(ys[i]), r: 5 }),
        svg("title", {}, `K = ${k}: inertia ${si(ys[i])}. Click to use this K.`));
      const use = () => { el.k.value = String(k); el.kValue.textContent = String(k); segment(false); };
      pt.addEventListener("click", use);
      pt.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); use(); } });
      nodes.push(pt);
    });
    el.elbow.replaceChildren(...nodes);
    el.elbowNote.textContent = curve.knee
      ? `The knee is at K = ${curve.knee}.`
      : "The curve has no clear knee.";
  }

  function elbowWidth() {
    return Math.max(240, Math.round(el.elbow.parentElement.clientWidth || 480));
  }

  const elbowBox = new ResizeObserver(() => {
    const drawn = Number((el.elbow.getAttribute("viewBox") || "").split(" ")[2]);
    if (state.curve && el.elbow.childElementCount && drawn !== elbowWidth()) {
      drawElbow(state.curve);
      markElbow(state.result ? state.result.k : null);
    }
  });
  elbowBox.observe(el.elbow.parentElement);

  function markElbow(k) {
    for (const pt of el.elbow.querySelectorAll(".pt")) {
      pt.classList.toggle("current", Number(pt.dataset.k) === k);
    }
  }

  // ------------------------------------------------------------------ start

  fetch("/api/health").then((r) => r.json()).then((h) => {
    if (h && h.max_upload_bytes) {
      state.maxUpload = h.max_upload_bytes;
      el.maxUpload.textContent = mb(h.max_upload_bytes);
    }
    if (h && h.k_max) el.k.max = String(h.k_max); // the largest K the API accepts
  }).catch(() => showError(unreachable()));
})();
