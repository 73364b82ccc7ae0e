package digits

import "math"

// float32ToHalf rounds f to the nearest IEEE 754 binary16 value (ties to
// even), keeping infinities and turning NaN into a quiet NaN. Weights are
// stored as F16 to keep the embedded file under 1 MB; safetensors'
// decoder widens them back exactly.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: the value is m·2^-24 with m = (1.mant)·2^(e+9).
		if e < -10 {
			return sign
		}
		return sign | uint16(roundShift(mant|0x800000, uint(14-e)))
	}
	// A mantissa that rounds up to 2^10 carries into the exponent, which
	// is exactly the next binade (or infinity).
	return sign | uint16(uint32(e)<<10+roundShift(mant, 13))
}

// roundShift is m >> s rounded to nearest, ties to even.
func roundShift(m uint32, s uint) uint32 {
	r := m >> s
	rem, half := m&(1<<s-1), uint32(1)<<(s-1)
	if rem > half || rem == half && r&1 == 1 {
		r++
	}
	return r
}
