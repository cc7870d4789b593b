// union: backing 0 is the writable upper directory over read-only lower ones, highest
// first, as overlayfs merges them: copy-up on write, whiteouts for removed lower names,
// opaque directories. Those rules are the layers runtime's; the module says which names
// the union never shows.
import { definePolicy } from '../lang/define.ts';

export default definePolicy({
  name: 'union',
  summary: 'backing 0 writable over read-only lower directories: copy-up on write, whiteouts for deletions',
  backings: { min: 2, max: 4 },
  params: {},
  layers: {
    // Names starting with ".wh." are whiteouts, or reserved for them.
    hidden(name) {
      return name.startsWith('.wh.');
    },
  },
});
