module github.com/tacagent/tacagent

go 1.26
