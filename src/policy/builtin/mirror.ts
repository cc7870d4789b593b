// mirror: every file on N replicas (RAID-1). A WRITE goes to all of them; a READ to one,
// the next after an error. The kernel runs readFrom compiled to BPF (fuse-kfunc policy show
// mirror); the daemon runs it as it is.
import { definePolicy, param } from '../lang/define.ts';

export default definePolicy({
  name: 'mirror',
  summary: 'every file on N replicas: WRITE to all, READ from one with fail-over',
  backings: { min: 2, max: 4 },
  params: {
    read: param.choice({ doc: 'the replica a READ tries first: the next one each time, or always the primary', choices: ['round-robin', 'primary'], default: 'round-robin' }),
  },
  replicas: {
    // Try `attempt` replicas after the first choice: this READ's turn, or the primary.
    readFrom(attempt, turn, p) {
      if (p.read === 'primary') return attempt;
      return (turn + attempt) % p.backings;
    },
  },
});
