"""PyTorch's autograd tutorial (``shared/seed``), written once against a module parameter so that
the same lines run on tapegrad and on PyTorch. ``randn`` inputs are replaced by fixed values so
that both print the same numbers."""

from __future__ import annotations


def run(torch) -> None:
    x = torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7], [1.5, -0.4, 0.9]], requires_grad=True)
    print(x.grad_fn)

    x = torch.ones(2, 2, requires_grad=True)
    print(x)
    y = x**2
    print(y)
    print(y.grad_fn)
    z = y * y * 3
    out = z.mean()
    print(z, out)

    a = torch.tensor([[0.4, -1.3], [2.2, 0.7]])
    a = (a * 3) / (a - 1)
    print(a.requires_grad)
    a.requires_grad_(True)
    print(a.requires_grad)
    b = (a * a).sum()
    print(b.grad_fn)

    out.backward()
    print(x.grad)

    out2 = x.sum()
    out2.backward()
    print(x.grad)

    out3 = x.sum()
    x.grad.data.zero_()
    out3.backward()
    print(x.grad)

    x = torch.tensor([-0.9332, 1.9616, 0.1739], requires_grad=True)
    print(x)
    y = x * 2
    i = 0
    while y.data.norm() < 1000:
        y = y * 2
        i = i + 1
    print(y)
    print(i)

    v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float)
    y.backward(v)
    print(x.grad)

    print(x.requires_grad)
    print((x**2).requires_grad)
    with torch.no_grad():
        print((x**2).requires_grad)

    x = torch.ones(1, requires_grad=True)
    print(x.data)
    print(x.data.requires_grad)
    y = 2 * x
    x.data *= 100
    y.backward()
    print(x)
    print(x.grad)
