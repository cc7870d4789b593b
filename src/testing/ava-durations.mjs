// Loaded with `node --import` before ava's CLI in the guest: after each test line of ava's TAP
// reporter, a comment "# duration <ms> ms <title>", from which npm test prints its slowest
// tests. ava (pinned to 7) reports durations only in its default reporter; should the TAP
// reporter have moved, nothing is added, and the slowest-tests list says it has no data.
// Plain JavaScript: it runs before tsx is loaded.
const url = new URL('../../node_modules/ava/lib/reporters/tap.js', import.meta.url);
try {
  const { default: TapReporter } = await import(url.href);
  const writeTest = TapReporter.prototype.writeTest;
  if (typeof writeTest === 'function') {
    TapReporter.prototype.writeTest = function (evt, flags) {
      writeTest.call(this, evt, flags);
      if (typeof evt.duration === 'number' && typeof this.prefixTitle === 'function') {
        this.reportStream.write(`# duration ${Math.round(evt.duration)} ms ${this.prefixTitle(evt.testFile, evt.title)}\n`);
      }
    };
  }
} catch {
  // No durations: the run itself is unaffected.
}
