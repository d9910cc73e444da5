// What the gate page uses of the device: the camera for QR codes (BarcodeDetector where the
// browser has it, the vendored jsQR otherwise), and the speaker and vibration for verdicts.
import { t } from "./gate-i18n.js";

const $ = (id) => document.getElementById(id);
const CAMERA_REPEAT_MS = 2500; // a code held in front of the camera is one scan

let stream = null;
let cameraTimer = 0;
let lastCamera = { code: "", at: 0 };
let jsqrLoading = null;

export function loadJsQR() {
  jsqrLoading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = document.body.dataset.jsqr;
    script.onload = () => resolve(window.jsQR);
    script.onerror = () => { jsqrLoading = null; reject(new Error(t("QR decoder not loaded"))); };
    document.head.append(script);
  });
  return jsqrLoading;
}

async function qrReader() {
  if ("BarcodeDetector" in window) {
    const formats = await BarcodeDetector.getSupportedFormats().catch(() => []);
    if (formats.includes("qr_code")) {
      const detector = new BarcodeDetector({ formats: ["qr_code"] });
      return async (video) => (await detector.detect(video))[0]?.rawValue;
    }
  }
  const jsQR = await loadJsQR();
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const scale = Math.min(1, 800 / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    if (!canvas.width || !canvas.height) return undefined;
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    return jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" })?.data;
  };
}

export function cameraRunning() {
  return stream !== null;
}

/** Read QR codes from the back camera, calling `onCode` once per code shown. */
export async function startCamera(onCode) {
  const video = $("camera-video");
  $("camera-status").textContent = t("Starting…");
  try {
    const read = await qrReader();
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    $("camera-toggle").textContent = t("Stop camera");
    $("camera-status").textContent = t("Point the camera at the ticket");
    const tick = async () => {
      if (!stream) return;
      try {
        const code = video.readyState >= 2 ? await read(video) : undefined;
        const now = Date.now();
        if (code) {
          const repeated = code === lastCamera.code && now - lastCamera.at < CAMERA_REPEAT_MS;
          lastCamera = { code, at: now };
          if (!repeated) onCode(code);
        }
      } catch {
        // A frame that could not be read: try the next one.
      }
      cameraTimer = setTimeout(tick, 120);
    };
    tick();
  } catch (err) {
    stopCamera();
    $("camera-status").textContent = t("Camera unavailable: %(reason)s", { reason: err.message });
  }
}

export function stopCamera() {
  clearTimeout(cameraTimer);
  stream?.getTracks().forEach((track) => track.stop());
  stream = null;
  const video = $("camera-video");
  video.srcObject = null;
  video.hidden = true;
  $("camera-toggle").textContent = t("Start camera");
  $("camera-status").textContent = "";
}

let audio;

/** A short high beep for valid, a low double one otherwise, and a buzz on phones. */
export function signal(ok) {
  try {
    audio ??= new AudioContext();
    const tones = ok ? [[1320, 0]] : [[330, 0], [330, 0.18]];
    for (const [frequency, delay] of tones) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      gain.gain.value = 0.15;
      oscillator.frequency.value = frequency;
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(audio.currentTime + delay);
      oscillator.stop(audio.currentTime + delay + 0.12);
    }
  } catch {
    // No audio: the screen still says it.
  }
  if (!ok) navigator.vibrate?.([120, 60, 120]);
}
