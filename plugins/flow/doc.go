// Package flow is the built-in plugin "flow": a multi-scale normalizing
// flow in the style of Glow (Kingma and Dhariwal 2018) and RealNVP (Dinh
// et al. 2017), with an exact log-likelihood and an exactly invertible
// encoding.
package flow
