//go:build !unix

package heavytest

import "os"

func tryLock(*os.File) (ok, supported bool) { return false, false }

func unlock(*os.File) {}
