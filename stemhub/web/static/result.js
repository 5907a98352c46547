// stemhub result page: every stem from one Web Audio transport, in sync to the sample.
// Waveforms come from the peaks in the page; audio loads on the first press of play.
// State a test or a screen reader can read lives in the DOM: #player[data-state],
// #player[data-position] (seconds) and .stem[data-gain] (the gain each stem is set to).
"use strict";

(function () {
  const player = document.getElementById("player");
  if (!player) return;
  const peaksData = JSON.parse(document.getElementById("peaks").textContent || "{}");
  const playButton = document.getElementById("play");
  const seek = document.getElementById("seek");
  const now = document.getElementById("now");
  const status = document.getElementById("status");
  const dpr = () => window.devicePixelRatio || 1;

  const stems = Array.from(document.querySelectorAll(".stem")).map((row) => ({
    row,
    name: row.dataset.stem,
    label: row.querySelector(".stem-name").textContent,
    src: row.dataset.src || null,
    color: row.dataset.color,
    canvas: row.querySelector("canvas.wave"),
    muteButton: row.querySelector("button.mute"),
    soloButton: row.querySelector("button.solo"),
    volumeInput: row.querySelector("input.volume"),
    peaks: (peaksData.stems || {})[row.dataset.stem] || null,
    muted: false,
    soloed: false,
    volume: 1,
    node: null,
    buffer: null,
    source: null,
    layers: null,
  }));

  let duration = parseFloat(player.dataset.duration) || 0;
  let ctx = null;
  let loading = null;
  let playing = false;
  let startedAt = 0;
  let offset = 0;
  let dragging = false;
  let shownSecond = -1;
  let firstDrawn = false;

  function clock(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function say(text) {
    status.textContent = text;
  }

  function position() {
    if (!playing || !ctx) return offset;
    return Math.min(duration, Math.max(offset, offset + ctx.currentTime - startedAt));
  }

  // waveforms: two pre-painted layers per stem (dim = to come, bright = played)
  function paint(stem, width, height, alpha) {
    const layer = document.createElement("canvas");
    layer.width = width;
    layer.height = height;
    const g = layer.getContext("2d");
    g.fillStyle = stem.color;
    g.globalAlpha = alpha;
    const peaks = stem.peaks;
    const middle = height / 2;
    if (!peaks || !peaks.length) {
      g.fillRect(0, middle - dpr() / 2, width, dpr());
      return layer;
    }
    const loudest = Math.max(1, ...peaks);
    const bar = Math.max(1, Math.round(2 * dpr()));
    const step = bar + Math.max(1, Math.round(dpr()));
    const n = peaks.length;
    for (let x = 0; x < width; x += step) {
      const from = Math.floor((x / width) * n);
      const to = Math.max(from + 1, Math.floor(((x + step) / width) * n));
      let peak = 0;
      for (let i = from; i < to && i < n; i++) peak = Math.max(peak, peaks[i]);
      const half = Math.max(dpr() / 2, (peak / loudest) * (middle - dpr()));
      g.fillRect(x, middle - half, bar, half * 2);
    }
    return layer;
  }

  function layout(stem) {
    const canvas = stem.canvas;
    const width = Math.max(1, Math.round(canvas.clientWidth * dpr()));
    const height = Math.max(1, Math.round(canvas.clientHeight * dpr()));
    canvas.width = width;
    canvas.height = height;
    stem.layers = [paint(stem, width, height, 0.5), paint(stem, width, height, 1)];
  }

  function draw(stem) {
    if (!stem.layers) layout(stem);
    const canvas = stem.canvas;
    const g = canvas.getContext("2d");
    const { width, height } = canvas;
    g.clearRect(0, 0, width, height);
    g.drawImage(stem.layers[0], 0, 0);
    const x = duration > 0 ? Math.round((position() / duration) * width) : 0;
    if (x > 0) g.drawImage(stem.layers[1], 0, 0, x, height, 0, 0, x, height);
    if (x > 0 || playing) {
      g.fillStyle = "#ffffff";
      g.fillRect(Math.min(x, width - dpr()), 0, Math.max(1, Math.round(dpr())), height);
    }
  }

  function drawAll() {
    stems.forEach((stem) => {
      draw(stem);
      if (!firstDrawn) {
        firstDrawn = true;
        performance.mark("stemhub:first-waveform");
      }
    });
  }

  // gains: volume x mute x solo, the rule every mixing desk has
  function gainOf(stem) {
    if (stem.muted) return 0;
    if (stems.some((s) => s.soloed) && !stem.soloed) return 0;
    return stem.volume;
  }

  function applyGains() {
    stems.forEach((stem) => {
      const gain = gainOf(stem);
      if (stem.node) stem.node.gain.setTargetAtTime(gain, ctx.currentTime, 0.01);
      stem.row.dataset.gain = String(gain);
      stem.row.classList.toggle("silent", gain === 0);
    });
  }

  // transport
  function showState(state) {
    player.dataset.state = state;
    playButton.setAttribute("aria-label", state === "playing" ? "Pause" : "Play");
  }

  function update() {
    const at = position();
    player.dataset.position = at.toFixed(3);
    if (!dragging) seek.value = String(at);
    const second = Math.floor(at);
    if (second !== shownSecond) {
      shownSecond = second;
      now.textContent = clock(at);
      seek.setAttribute("aria-valuetext", `${clock(at)} of ${clock(duration)}`);
    }
    stems.forEach(draw);
  }

  function tick() {
    if (!playing) return;
    if (position() >= duration) {
      stopSources();
      playing = false;
      offset = 0;
      showState("ended");
      update();
      return;
    }
    update();
    requestAnimationFrame(tick);
  }

  async function load() {
    ctx = new AudioContext();
    const playable = stems.filter((stem) => stem.src);
    playable.forEach((stem) => {
      stem.node = ctx.createGain();
      stem.node.connect(ctx.destination);
    });
    applyGains();
    let done = 0;
    say(`Loading stems: 0 of ${playable.length}`);
    await Promise.all(
      playable.map(async (stem) => {
        const response = await fetch(stem.src, { credentials: "omit" });
        if (!response.ok) throw new Error(`${stem.label}: HTTP ${response.status}`);
        stem.buffer = await ctx.decodeAudioData(await response.arrayBuffer());
        done += 1;
        say(`Loading stems: ${done} of ${playable.length}`);
      }),
    );
    duration = Math.max(duration, ...playable.map((stem) => stem.buffer.duration));
    seek.max = String(duration);
    say("");
  }

  function stopSources() {
    stems.forEach((stem) => {
      if (!stem.source) return;
      stem.source.stop();
      stem.source.disconnect();
      stem.source = null;
    });
  }

  function start() {
    if (offset >= duration) offset = 0;
    const when = ctx.currentTime + 0.03;
    stems.forEach((stem) => {
      if (!stem.buffer) return;
      const source = ctx.createBufferSource();
      source.buffer = stem.buffer;
      source.connect(stem.node);
      source.start(when, offset);
      stem.source = source;
    });
    startedAt = when;
    playing = true;
    showState("playing");
    requestAnimationFrame(tick);
  }

  async function play() {
    if (playing) return;
    if (!loading) {
      loading = load();
      showState("loading");
    }
    try {
      await loading;
    } catch (error) {
      loading = null;
      ctx = null;
      stems.forEach((stem) => (stem.node = null));
      showState("idle");
      say(`Could not load the stems (${error.message}). Try again, or download them.`);
      return;
    }
    await ctx.resume();
    if (!playing) start();
  }

  function pause() {
    if (!playing) return;
    offset = position();
    stopSources();
    playing = false;
    showState("paused");
    update();
  }

  function seekTo(seconds) {
    const target = Math.min(Math.max(0, seconds), duration);
    if (playing) {
      stopSources();
      playing = false;
      offset = target;
      start();
    } else {
      offset = target;
    }
    update();
  }

  function toggle() {
    if (playing) pause();
    else play();
  }

  playButton.addEventListener("click", toggle);
  seek.addEventListener("pointerdown", () => (dragging = true));
  seek.addEventListener("pointerup", () => (dragging = false));
  seek.addEventListener("input", () => seekTo(parseFloat(seek.value)));

  stems.forEach((stem) => {
    stem.row.style.setProperty("--stem", stem.color);
    stem.muteButton.addEventListener("click", () => {
      stem.muted = !stem.muted;
      stem.muteButton.setAttribute("aria-pressed", String(stem.muted));
      applyGains();
    });
    stem.soloButton.addEventListener("click", () => {
      stem.soloed = !stem.soloed;
      stem.soloButton.setAttribute("aria-pressed", String(stem.soloed));
      applyGains();
    });
    stem.volumeInput.addEventListener("input", () => {
      stem.volume = parseFloat(stem.volumeInput.value);
      applyGains();
    });
    stem.canvas.addEventListener("click", (event) => {
      const box = stem.canvas.getBoundingClientRect();
      seekTo(((event.clientX - box.left) / box.width) * duration);
    });
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target !== document.body && target !== player) return;
    if (event.key === " " || event.key === "k") {
      event.preventDefault();
      toggle();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      seekTo(position() + (event.key === "ArrowLeft" ? -5 : 5));
    }
  });

  let pending = false;
  new ResizeObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      stems.forEach((stem) => (stem.layers = null));
      stems.forEach(draw);
    });
  }).observe(document.querySelector(".stems"));

  applyGains();
  drawAll();
  performance.mark("stemhub:waveforms");
})();
