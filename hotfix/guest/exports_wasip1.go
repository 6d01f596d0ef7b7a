//go:build wasip1

//lint:file-ignore U1000 the exports are called by the host (go:wasmexport), not by Go

package guest

import "unsafe"

// The ABI's exports: see the package doc. Addresses are 32-bit offsets in
// the module's linear memory.

//go:wasmexport guild_abi
func guildABI() uint32 { return ABIVersion }

//go:wasmexport guild_alloc
func guildAlloc(size uint32) uint32 {
	b := alloc(size)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport guild_handle
func guildHandle(ptr, stateLen, typeLen, msgLen uint32) uint64 {
	_ = ptr // the buffer of the last guild_alloc, which the guest knows
	return pack(handle(stateLen, typeLen, msgLen))
}

//go:wasmexport guild_check
func guildCheck() uint64 { return pack(check()) }

func pack(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}
