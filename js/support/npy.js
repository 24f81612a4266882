// A reader of NumPy .npy files (format versions 1–3), enough for the tests' reference arrays:
// little-endian or single-byte numeric types, C order.

const TYPES = {
  "|u1": Uint8Array, "<u1": Uint8Array, "|i1": Int8Array, "<u2": Uint16Array, "<i2": Int16Array,
  "<u4": Uint32Array, "<i4": Int32Array, "<f4": Float32Array, "<f8": Float64Array,
};

export function readNpy(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (b.length < 10 || magic.some((v, i) => b[i] !== v)) throw new Error("not an .npy file");
  const major = b[6];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLength > b.length) throw new Error(".npy header truncated");
  const header = new TextDecoder("latin1").decode(b.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`unreadable .npy header ${header}`);
  if (fortran !== "False") throw new Error(".npy in Fortran order is not supported");
  const Type = TYPES[descr];
  if (!Type) throw new Error(`.npy type ${descr} is not supported`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, c) => a * c, 1);
  const offset = start + headerLength;
  if (offset + count * Type.BYTES_PER_ELEMENT !== b.length) throw new Error(".npy data size does not match its shape");
  // Copy (Uint8Array.prototype.slice: a Node Buffer's own slice shares memory) so that the
  // typed array is aligned whatever the header length.
  const data = new Type(Uint8Array.prototype.slice.call(b, offset).buffer, 0, count);
  return { dtype: descr.slice(1), shape, data };
}
