//go:build !unix

package proc
