import CofreCLI

await cofreMain()
