// Keep the hand-written parts of a cover letter (subject, blurb) across exports while
// taking the generated parts (patch count, shortlog, diffstat) from the new one.

interface CoverParts {
  head: string;      // mail headers up to and including the Subject line(s)
  subject: string;   // text after "[PATCH 0/N] "
  blurb: string;     // between the headers and the shortlog
  generated: string; // shortlog + diffstat + base-commit
}

export function splitCover(text: string): CoverParts {
  const headerEnd = text.indexOf('\n\n');
  if (headerEnd < 0) throw new Error('cover letter has no header/body separator');
  const head = text.slice(0, headerEnd);
  const body = text.slice(headerEnd + 2);
  const subj = /^Subject: \[[^\]]*\] ?(.*(?:\n .*)*)/m.exec(head);
  // The shortlog starts with "Author Name (N):" on its own line.
  const m = /^\S.* \(\d+\):$/m.exec(body);
  const cut = m ? m.index : body.length;
  return { head, subject: subj ? subj[1] : '', blurb: body.slice(0, cut).replace(/\s+$/, ''), generated: body.slice(cut) };
}

export function mergeCoverLetter(previous: string, generated: string): string {
  const prev = splitCover(previous);
  const next = splitCover(generated);
  const placeholder = (s: string) => /\*\*\* (SUBJECT|BLURB) HERE \*\*\*/.test(s);
  const subject = prev.subject && !placeholder(prev.subject) ? prev.subject : next.subject;
  const blurb = prev.blurb && !placeholder(prev.blurb) ? prev.blurb : next.blurb;
  const head = next.head.replace(/^(Subject: \[[^\]]*\] ?).*(?:\n .*)*/m, (_m, p: string) => p + subject);
  return `${head}\n\n${blurb}\n\n${next.generated}`;
}
