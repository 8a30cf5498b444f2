# Convenience targets; each is one script under scripts/ (the README's commands).
.PHONY: demo test stop bench
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
stop:
	./scripts/stop.sh
bench:
	./scripts/bench.sh
