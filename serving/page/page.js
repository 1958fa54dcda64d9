// The page of serve.py: a live session over WebRTC, and the upload form.
// window.lipsync holds what the page has seen (read by the browser test, and handy in a console).
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { "X-Token": token } : {};
const $ = (id) => document.getElementById(id);
const stats = (window.lipsync = { state: "idle", session: null, framesDecoded: 0, flags: [], speaking: 0,
                                   audioSamples: 0, error: null, policyViolations: [] });
document.addEventListener("securitypolicyviolation", (e) => stats.policyViolations.push(e.violatedDirective));
let pc = null, mic = null, statsTimer = null, config = null;

async function errorOf(response) {
  try { return (await response.json()).error; } catch (e) { return `${response.status} ${response.statusText}`; }
}

function show(id, text, isError) {
  $(id).textContent = text;
  $(id).className = isError ? "error" : "note";
}

function iceGathered(connection) {  // aiortc takes the candidates inside the offer (no trickle ICE)
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    connection.addEventListener("icegatheringstatechange", () => {
      if (connection.iceGatheringState === "complete") resolve();
    });
  });
}

async function start() {
  $("start").disabled = true;
  stats.state = "connecting"; stats.error = null;
  show("live-status", "Connecting...");
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
    pc = new RTCPeerConnection({ iceServers: (config && config.stun.length) ? [{ urls: config.stun }] : [] });
    pc.addTrack(mic.getAudioTracks()[0], mic);
    pc.addTransceiver("video", { direction: "recvonly" });
    const channel = pc.createDataChannel("frames");
    channel.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      stats.flags.push(frame.speaking);
      if (frame.speaking) stats.speaking += 1;
      $("screen").classList.toggle("speaking", frame.speaking);
    };
    const remote = new MediaStream();
    pc.ontrack = (event) => {
      remote.addTrack(event.track);
      $("video").srcObject = remote;
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(pc.connectionState)) stop(`Connection ${pc.connectionState}.`);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    const response = await fetch("offer", {
      method: "POST", headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }) });
    if (!response.ok) throw new Error(await errorOf(response));
    const answer = await response.json();
    stats.session = answer.session;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    stats.state = "live";
    $("stop").disabled = false;
    statsTimer = setInterval(readStats, 500);
  } catch (error) {
    stop(`Could not start: ${error.message || error}`, true);
  }
}

async function readStats() {
  if (!pc) return;
  const report = await pc.getStats();
  report.forEach((entry) => {
    if (entry.type !== "inbound-rtp") return;
    if (entry.kind === "video") stats.framesDecoded = entry.framesDecoded || 0;
    if (entry.kind === "audio") stats.audioSamples = entry.totalSamplesReceived || 0;
  });
  show("live-status", `Session ${stats.session}: ${stats.framesDecoded} frames shown, ` +
       `${stats.speaking} of ${stats.flags.length} speaking.`);
}

function stop(message, isError) {
  clearInterval(statsTimer);
  if (pc) pc.close();
  if (mic) mic.getTracks().forEach((track) => track.stop());
  pc = mic = null;
  stats.state = isError ? "error" : "stopped";
  if (isError) stats.error = message;
  $("start").disabled = false; $("stop").disabled = true;
  $("screen").classList.remove("speaking");
  show("live-status", message || "Stopped.", isError);
}

function upload(event) {
  event.preventDefault();
  const form = new FormData($("upload"));
  const size = [...form.values()].reduce((sum, value) => sum + (value.size || 0), 0);
  if (config && size > config.max_upload_bytes) {
    show("job-status", `The files are ${(size / 2 ** 20).toFixed(1)} MB; this server takes at most ` +
         `${(config.max_upload_bytes / 2 ** 20).toFixed(1)} MB.`, true);
    return;
  }
  const bar = $("job-progress");
  bar.hidden = false; bar.value = 0;
  const request = new XMLHttpRequest();
  request.open("POST", "jobs");
  Object.entries(headers).forEach(([name, value]) => request.setRequestHeader(name, value));
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) { bar.value = e.loaded / e.total; show("job-status", `Uploading: ${Math.round(100 * bar.value)} %`); }
  };
  request.onload = () => {
    let reply = {};
    try { reply = JSON.parse(request.responseText); } catch (e) { /* shown below */ }
    if (request.status !== 202) { show("job-status", reply.error || `Refused (${request.status}).`, true); return; }
    follow(reply.id);
  };
  request.onerror = () => show("job-status", "The upload failed (connection lost, or refused as too large).", true);
  request.send(form);
}

async function follow(id) {
  const bar = $("job-progress");
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  for (;;) {
    let response;
    try { response = await fetch(`jobs/${id}`, { headers }); } catch (error) {
      show("job-status", "The server cannot be reached.", true); return;
    }
    if (!response.ok) { show("job-status", await errorOf(response), true); return; }
    const job = await response.json();
    if (job.state === "done") {
      bar.value = 1;
      $("job-status").innerHTML = "";
      const link = document.createElement("a");
      link.href = `jobs/${id}/result${query}`; link.textContent = "Download the lip-synced video";
      $("job-status").append("Done. ", link);
      return;
    }
    if (job.state === "failed") { show("job-status", `Failed: ${job.error}`, true); return; }
    bar.value = job.total ? job.done / job.total : 0;
    show("job-status", job.state === "queued" ? "Waiting for the job before it..." :
         `Lip-syncing: ${job.done} of ${job.total || "?"} frames`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

$("start").onclick = start;
$("stop").onclick = () => stop("Stopped.");
$("hear").onchange = () => { $("video").muted = !$("hear").checked; };
$("upload").onsubmit = upload;
fetch("config", { headers }).then((r) => r.json()).then((c) => { config = c; }).catch(() => {})
  .finally(() => { if (params.get("autostart")) start(); });
