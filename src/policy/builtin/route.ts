// route: every file in one backing directory, chosen by its name; every directory in all of
// them. Rules like ".log=1,logs/=2" are tried in order: an extension matches the end of the
// name, a directory prefix the start of the path; files no rule matches live in backing 0.
import { definePolicy, param } from '../lang/define.ts';

export default definePolicy({
  name: 'route',
  summary: 'each file in one backing directory, by its name (extension or path prefix rules)',
  backings: { min: 2, max: 4 },
  params: {
    rules: param.rules({ doc: 'comma list of PATTERN=INDEX: ".log=1" by extension, "logs/=2" by path prefix; first match wins, unmatched files in backing 0', default: 'none' }),
  },
  placement: {
    // The first rule that matches wins: a prefix ends with '/', anything else is an extension.
    place(path, p) {
      for (const r of p.rules) {
        if (r.match.endsWith('/') ? path.startsWith(r.match) : path.endsWith(r.match)) return r.to;
      }
      return 0;
    },
  },
});
