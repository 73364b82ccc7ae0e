package layers

// AppendParams adds parameters of another set to ps, so the external
// tests can compute a layer's gradients alongside their inputs'.
func AppendParams(ps *Params, p ...*Param) { ps.list = append(ps.list, p...) }
