// tier: backing 0 is the slow tier and holds every file, backing 1 the fast tier, a cache.
// READ comes from the fast copy when there is one, WRITE goes through to both (the tiers
// runtime's rules); the module decides which cold files are copied up at their first open.
import { definePolicy, param } from '../lang/define.ts';

export default definePolicy({
  name: 'tier',
  summary: 'READ from the fast tier (backing 1) when the file is there, else the slow tier (backing 0); WRITE to both',
  backings: { min: 2, max: 2 },
  params: {
    promoteMax: param.size({ doc: 'largest cold file copied up to the fast tier at its first open (0: only empty ones)', default: '64m', min: 0 }),
  },
  tiers: {
    // Small files are worth a copy; large ones are read where they are.
    promote(size, p) {
      return size <= p.promoteMax;
    },
  },
});
