package gemm

// packA copies the mc x kc block of op(A) starting at (i0, p0) into dst as
// ceil(mc/mr) micro-panels, each kc x mr with the mr row values of one k
// adjacent, so the micro-kernel reads A strictly sequentially. Rows past mc
// are zero so edge tiles can run the full kernel.
func packA(dst, a []float32, lda int, trans bool, mr, i0, mc, p0, kc int) {
	for q := 0; q*mr < mc; q++ {
		r0 := i0 + q*mr
		rows := min(mr, mc-q*mr)
		d := dst[q*mr*kc : (q+1)*mr*kc]
		if rows < mr {
			clear(d)
		}
		if trans {
			// op(A)(i, p) = a[p*lda+i]: the values of one k are contiguous.
			for p := 0; p < kc; p++ {
				copy(d[p*mr:p*mr+rows], a[(p0+p)*lda+r0:])
			}
			continue
		}
		// op(A)(i, p) = a[i*lda+p]: each source row is read sequentially;
		// the strided writes stay inside the panel, which fits in L1.
		for r := 0; r < rows; r++ {
			s := a[(r0+r)*lda+p0:][:kc]
			for p, v := range s {
				d[p*mr+r] = v
			}
		}
	}
}

// packB copies the kc x nc block of op(B) starting at (p0, j0) into dst as
// ceil(nc/nr) micro-panels, each kc x nr with the nr column values of one k
// adjacent. Columns past nc are zero.
func packB(dst, b []float32, ldb int, trans bool, nr, p0, kc, j0, nc int) {
	for q := 0; q*nr < nc; q++ {
		c0 := j0 + q*nr
		cols := min(nr, nc-q*nr)
		d := dst[q*nr*kc : (q+1)*nr*kc]
		if cols < nr {
			clear(d)
		}
		if !trans {
			// op(B)(p, j) = b[p*ldb+j]: each k contributes one contiguous run.
			for p := 0; p < kc; p++ {
				copy(d[p*nr:p*nr+cols], b[(p0+p)*ldb+c0:])
			}
			continue
		}
		// op(B)(p, j) = b[j*ldb+p]: a transpose, done like packA's rows.
		for c := 0; c < cols; c++ {
			s := b[(c0+c)*ldb+p0:][:kc]
			for p, v := range s {
				d[p*nr+c] = v
			}
		}
	}
}
