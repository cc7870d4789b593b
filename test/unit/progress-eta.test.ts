// The first kernel build says up front what it will cost here, and its progress lines an ETA.
import test from 'ava';
import { eta } from '../../src/util/progress.ts';
import { coldBuildEstimate, COLD_BZIMAGE_LINES } from '../../src/kernel/build.ts';

test('eta: nothing until there is something to go on, then a share and the time left at the pace so far', (t) => {
  t.is(eta(1000, 500, COLD_BZIMAGE_LINES), undefined);       // too early to tell
  t.is(eta(60_000, 5, COLD_BZIMAGE_LINES), undefined);       // too few lines
  t.is(eta(60_000, 425, 1700), '~25%, ETA 3m00s');           // a quarter in a minute: three to go
  t.is(eta(300_000, 1700, 1700), '~99%, finishing');
  t.is(eta(300_000, 2000, 1700), '~99%, finishing');          // more lines than measured: not negative
});

test('the estimate of a build from scratch follows the number of cores', (t) => {
  t.is(coldBuildEstimate(2), 'about 12 minutes with 2 cores (more if the machine is busy)');
  t.is(coldBuildEstimate(1), 'about 22 minutes with 1 core (more if the machine is busy)');
  t.is(coldBuildEstimate(16), 'about 3 minutes with 16 cores (more if the machine is busy)');
});
