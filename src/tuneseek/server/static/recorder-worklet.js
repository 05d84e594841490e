// The audio-thread side of recorder.js: hands the microphone's samples to the page in blocks of 4096.
class TuneseekRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(4096);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let from = 0;
      while (from < channel.length) {
        const n = Math.min(channel.length - from, this.block.length - this.filled);
        this.block.set(channel.subarray(from, from + n), this.filled);
        this.filled += n;
        from += n;
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(4096);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("tuneseek-recorder", TuneseekRecorder);
