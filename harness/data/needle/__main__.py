from harness.data.needle.dataset import main

main()
