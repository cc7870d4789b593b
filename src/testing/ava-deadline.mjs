// Loaded with `node --import` in ava's worker processes of the guest run: every test gets a
// deadline of its own (FUSE_KFUNC_TEST_DEADLINE_SEC, default 900 s), so one that hangs fails
// by name, with what it logged (t.log) up to then, and the tests after it still run; a test
// that needs longer says so with t.timeout(). ava's own --timeout only notices a run in which
// nothing finished for a while. ava (pinned to 7) has no option for a per-test default; should
// its Test class have moved, tests simply have no deadline of their own.
// Plain JavaScript: it may load before tsx.
const sec = Number(process.env.FUSE_KFUNC_TEST_DEADLINE_SEC ?? 900);
const url = new URL('../../node_modules/ava/lib/test.js', import.meta.url);
try {
  const { default: Test } = await import(url.href);
  const run = Test.prototype.run;
  if (sec > 0 && typeof run === 'function' && typeof Test.prototype.timeout === 'function') {
    Test.prototype.run = function () {
      if (!this.isHook) {
        this.timeout(sec * 1000, `no result within the per-test deadline of ${sec} s (FUSE_KFUNC_TEST_DEADLINE_SEC; ` +
          'a test that needs longer calls t.timeout())');
      }
      return run.call(this);
    };
  }
} catch {
  // No per-test deadlines: the run itself is unaffected.
}
