// Package proto holds the gRPC wire types of the plugin contract. Plugin
// authors do not use it: package sdk serves it and package sdk/client calls
// it (through sdk/internal/wire).
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
