package gatekcp

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	kcp "github.com/xtaci/kcp-go/v5"
)

// MinKeyLen is the shortest secret Options.Key may be, in bytes.
const MinKeyLen = 16

// ErrShortKey: Options.Key is set but shorter than MinKeyLen.
var ErrShortKey = errors.New("gatekcp: key too short")

// keyInfo is HKDF's info: it ties the derived key to this use.
const keyInfo = "guild gate/kcp aes-256"

// DeriveKey returns the 32-byte AES-256 key that encrypts KCP under the
// secret: HKDF-SHA256 (RFC 5869) of the secret, with no salt and the info
// "guild gate/kcp aes-256". Another implementation of the protocol derives
// it so, then encrypts as kcp-go does (docs/PROTOCOL.md). The secret must
// have at least MinKeyLen bytes (ErrShortKey); the error never shows it.
func DeriveKey(secret []byte) ([]byte, error) {
	if len(secret) < MinKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, fewer than %d", ErrShortKey, len(secret), MinKeyLen)
	}
	return hkdf.Key(sha256.New, secret, nil, keyInfo, 32)
}

// blockCrypt returns kcp-go's AES block encryption under the key derived
// from o.Key, or nil (no encryption) when o.Key is empty.
func (o Options) blockCrypt() (kcp.BlockCrypt, error) {
	if len(o.Key) == 0 {
		return nil, nil
	}
	key, err := DeriveKey(o.Key)
	if err != nil {
		return nil, err
	}
	return kcp.NewAESBlockCrypt(key)
}
