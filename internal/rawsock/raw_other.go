//go:build !linux

package rawsock

const supported = false

func (c *Conn) readOnce(uintptr) bool { panic("rawsock: not supported") }
