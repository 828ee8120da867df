/** A bad request parameter: answered with 400 and a JSON body naming the parameter. */
export class ParamError extends Error {
  override readonly name = 'ParamError';
  readonly code = 'ERR_BAD_PARAMETER';
  constructor(readonly parameter: string, message: string) {
    super(message);
  }
}

export function parseQuery(q: string | undefined): URLSearchParams {
  return new URLSearchParams(q ?? '');
}

export function numberParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number, integer = false): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new ParamError(name, `${name} must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

export function enumParam<T extends string>(q: URLSearchParams, name: string, allowed: readonly T[], dflt: T | undefined): T | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const v = raw.toUpperCase() === raw ? raw : raw.toLowerCase();
  const hit = allowed.find((a) => a === raw || a === v || a.toLowerCase() === raw.toLowerCase());
  if (!hit) throw new ParamError(name, `${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
  return hit;
}

export function idParam(name: string, raw: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ParamError(name, `${name} is not a valid percent-encoded value`);
  }
  if (!/^[\w.:@-]{1,200}$/.test(v)) throw new ParamError(name, `${name} must be 1-200 characters of letters, digits and . : @ - _`);
  return v;
}
