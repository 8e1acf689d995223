package consumer

import "errors"

// ErrClosed: the Consumer was closed or its Run already ended.
var ErrClosed = errors.New("consumer: closed")

// ErrConfig: the configuration is invalid.
var ErrConfig = errors.New("consumer: invalid config")
