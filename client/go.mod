module github.com/rosterhq/roster/client

go 1.26.0
